#include "core/export/gguf_tokenizer.h"

#include <cctype>
#include <filesystem>
#include <map>
#include <memory>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "core/tokenizer/tokenizer.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"
#include "nlohmann/json.hpp"

namespace qlorad::gguf {
namespace {

using Json = nlohmann::json;

// Split regexes of the byte-level pre-tokenizers llama.cpp implements, by its name.
constexpr std::pair<const char*, const char*> kPreTokenizers[] = {
    {"llama-bpe",
     "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
     "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
    {"qwen2",
     "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
     "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
};

struct Vocab {
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  std::map<std::string, int32_t> ids;  // token text -> id (vocab and added tokens)
};

bool LooksSpecial(const std::string& text) {  // convert_hf_to_gguf.py does_token_look_special
  return (absl::StartsWith(text, "<|") && absl::EndsWith(text, "|>")) || text == "<pad>" || text == "<mask>";
}

bool IsByteToken(const std::string& text) {  // "<0xNN>"
  return text.size() == 6 && absl::StartsWith(text, "<0x") && text[5] == '>' && std::isxdigit(static_cast<unsigned char>(text[3])) &&
         std::isxdigit(static_cast<unsigned char>(text[4]));
}

// Fills tokens/types from model.vocab and added_tokens; missing ids become [PAD<i>].
absl::Status ReadVocab(const Json& json, int64_t vocab_size, bool sentencepiece, const std::string& source,
                       Vocab& vocab, int64_t& padded) {
  if (!json.contains("model") || !json.at("model").is_object() || !json.at("model").contains("vocab") ||
      !json.at("model").at("vocab").is_object())
    return absl::InvalidArgumentError(absl::StrCat(source, ": model.vocab is missing or not an object"));
  vocab.tokens.assign(vocab_size, "");
  vocab.types.assign(vocab_size, 0);
  auto place = [&](const std::string& text, int64_t id, GgufTokenType type) -> absl::Status {
    if (id < 0 || id >= vocab_size)
      return absl::InvalidArgumentError(absl::StrCat(source, ": token '", text, "' has id ", id,
                                                     " but config.json vocab_size is ", vocab_size,
                                                     " (hint: tokenizer and model do not match)"));
    vocab.tokens[id] = text;
    vocab.types[id] = static_cast<int32_t>(type);
    vocab.ids[text] = static_cast<int32_t>(id);
    return absl::OkStatus();
  };
  const std::string unk = json["model"].value("unk_token", Json()).is_string() ? json["model"]["unk_token"].get<std::string>() : "";
  for (const auto& [text, id] : json["model"]["vocab"].items()) {
    GgufTokenType type = GgufTokenType::kNormal;
    if (sentencepiece && IsByteToken(text)) type = GgufTokenType::kByte;
    if (sentencepiece && text == unk) type = GgufTokenType::kUnknown;
    if (!id.is_number_integer())
      return absl::InvalidArgumentError(absl::StrCat(source, ": model.vocab['", text, "'] is not an integer id"));
    QLORAD_RETURN_IF_ERROR(place(text, id.get<int64_t>(), type));
  }
  for (const Json& added : json.value("added_tokens", Json::array())) {
    std::string text = added.at("content").get<std::string>();
    const int64_t id = added.at("id").get<int64_t>();
    GgufTokenType type = GgufTokenType::kUserDefined;
    if (added.value("special", false) || LooksSpecial(text)) {
      type = sentencepiece && text == unk ? GgufTokenType::kUnknown : GgufTokenType::kControl;
    } else if (!sentencepiece) {
      text = absl::StrReplaceAll(text, {{"\xe2\x96\x81", " "}});  // the converter pre-normalizes user-defined spaces
    }
    QLORAD_RETURN_IF_ERROR(place(text, id, type));
  }
  padded = 0;
  for (int64_t i = 0; i < vocab_size; ++i) {
    if (vocab.types[i] != 0) continue;
    vocab.tokens[i] = absl::StrCat("[PAD", i, "]");
    vocab.types[i] = static_cast<int32_t>(GgufTokenType::kUnused);
    ++padded;
  }
  return absl::OkStatus();
}

// "a b" merge strings; the [a, b] form (transformers >= 4.45) has spaces inside
// parts written as U+0120, as gguf-py does.
std::vector<std::string> ReadMerges(const Json& merges) {
  std::vector<std::string> out;
  out.reserve(merges.size());
  for (const Json& m : merges) {
    if (m.is_string()) {
      out.push_back(m.get<std::string>());
    } else {
      auto part = [&](int i) { return absl::StrReplaceAll(m.at(i).get<std::string>(), {{" ", "\xc4\xa0"}}); };
      out.push_back(absl::StrCat(part(0), " ", part(1)));
    }
  }
  return out;
}

absl::StatusOr<std::string> PreTokenizerName(const Json& json, const std::string& source) {
  const Json pre = json.value("pre_tokenizer", Json());
  std::vector<Json> steps;
  if (pre.is_object() && pre.value("type", "") == "Sequence") {
    for (const Json& s : pre.value("pretokenizers", Json::array())) steps.push_back(s);
  } else if (pre.is_object()) {
    steps.push_back(pre);
  }
  for (const Json& step : steps) {
    if (step.value("type", "") == "Split" && step.contains("pattern") && step["pattern"].contains("Regex")) {
      const std::string regex = step["pattern"]["Regex"].get<std::string>();
      for (const auto& [name, pattern] : kPreTokenizers)
        if (regex == pattern) return std::string(name);
      return absl::UnimplementedError(absl::StrCat(source, ": pre_tokenizer split regex '", regex,
                                                   "' is none llama.cpp implements that qlorad knows (llama-bpe, qwen2)"));
    }
    if (step.value("type", "") == "ByteLevel" && step.value("use_regex", true)) return std::string("gpt-2");
  }
  return absl::UnimplementedError(absl::StrCat(source, ": byte-level BPE without a known pre_tokenizer split regex"));
}

// Scores for llama.cpp's SentencePiece-style merging (see the header).
std::vector<float> MergeScores(const Vocab& vocab, const std::vector<std::string>& merges) {
  std::vector<float> scores(vocab.tokens.size(), -1e9f);
  for (size_t i = 0; i < vocab.tokens.size(); ++i) {
    const std::string& t = vocab.tokens[i];
    size_t code_points = 0;
    for (char c : t) code_points += (static_cast<unsigned char>(c) & 0xc0) != 0x80;
    const bool one_char = code_points == 1;
    if (one_char || vocab.types[i] != static_cast<int32_t>(GgufTokenType::kNormal)) scores[i] = 0.0f;
  }
  for (size_t rank = merges.size(); rank-- > 0;) {  // lowest rank wins for a token several merges make
    const std::string& m = merges[rank];
    const size_t space = m.find(' ');
    if (space == std::string::npos) continue;
    auto it = vocab.ids.find(m.substr(0, space) + m.substr(space + 1));
    if (it != vocab.ids.end()) scores[it->second] = -static_cast<float>(rank);
  }
  return scores;
}

bool AddSpacePrefix(const Json& json, const Json& tokenizer_config) {
  if (tokenizer_config.contains("add_prefix_space") && tokenizer_config["add_prefix_space"].is_boolean())
    return tokenizer_config["add_prefix_space"].get<bool>();
  const std::string dumped = json.value("normalizer", Json()).dump() + json.value("pre_tokenizer", Json()).dump();
  if (absl::StrContains(dumped, "\"Prepend\"")) return true;  // Prepend("▁") normalizer
  if (absl::StrContains(dumped, "\"Metaspace\""))
    return !absl::StrContains(dumped, "\"prepend_scheme\":\"never\"") && !absl::StrContains(dumped, "\"add_prefix_space\":false");
  return false;
}

std::optional<int32_t> IdOfConfigToken(const Json& config, const char* key, const Vocab& vocab) {
  if (!config.contains(key)) return std::nullopt;
  const Json& v = config[key];
  std::string text = v.is_string() ? v.get<std::string>() : v.is_object() ? v.value("content", "") : "";
  auto it = vocab.ids.find(text);
  if (text.empty() || it == vocab.ids.end()) return std::nullopt;
  return it->second;
}

}  // namespace

absl::StatusOr<GgufVocabInfo> SetTokenizerMetadata(const std::string& model_dir, const ModelConfig& config,
                                                   GgufWriter& writer) {
  const std::string source = model_dir + "/tokenizer.json";
  if (!std::filesystem::exists(source))
    return absl::NotFoundError(absl::StrCat("GGUF export needs ", source, " (llama.cpp embeds the tokenizer; ",
                                            "a tokenizer.model-only model is not supported)"));
  QLORAD_ASSIGN_OR_RETURN(std::string text, ReadFileToString(source));
  const Json json = Json::parse(text, nullptr, false);
  text.clear();
  if (json.is_discarded() || !json.is_object() || !json.contains("model") || !json["model"].is_object())
    return absl::InvalidArgumentError(absl::StrCat(source, ": not a tokenizer.json (no 'model' object)"));
  Json tokenizer_config = Json::object();
  if (std::filesystem::exists(model_dir + "/tokenizer_config.json")) {
    QLORAD_ASSIGN_OR_RETURN(std::string config_text, ReadFileToString(model_dir + "/tokenizer_config.json"));
    tokenizer_config = Json::parse(config_text, nullptr, false);
    if (!tokenizer_config.is_object()) tokenizer_config = Json::object();
  }
  // qlorad's own tokenizer decides bos/eos and what encoding adds, so llama.cpp adds the same.
  QLORAD_ASSIGN_OR_RETURN(std::unique_ptr<tokenizer::Tokenizer> qlorad_tokenizer, tokenizer::Tokenizer::Load(model_dir));

  GgufVocabInfo info;
  try {
    const Json& model = json["model"];
    if (model.value("type", "") != "BPE")
      return absl::UnimplementedError(absl::StrCat(source, ": model.type '", model.value("type", ""),
                                                   "' has no GGUF export (supported: BPE)"));
    const bool sentencepiece = model.value("byte_fallback", false);
    info.model = sentencepiece ? "llama" : "gpt2";
    if (sentencepiece) {
      info.pre = "default";
    } else {
      QLORAD_ASSIGN_OR_RETURN(info.pre, PreTokenizerName(json, source));
    }
    Vocab vocab;
    QLORAD_RETURN_IF_ERROR(ReadVocab(json, config.vocab_size, sentencepiece, source, vocab, info.padded));
    std::vector<std::string> merges = ReadMerges(model.value("merges", Json::array()));
    info.token_count = static_cast<int64_t>(vocab.tokens.size());
    writer.SetString("tokenizer.ggml.model", info.model);
    writer.SetString("tokenizer.ggml.pre", info.pre);
    writer.SetStringArray("tokenizer.ggml.tokens", vocab.tokens);
    if (sentencepiece) {
      writer.SetFloat32Array("tokenizer.ggml.scores", MergeScores(vocab, merges));
      writer.SetInt32Array("tokenizer.ggml.token_type", vocab.types);
      writer.SetBool("tokenizer.ggml.add_space_prefix", AddSpacePrefix(json, tokenizer_config));
    } else {
      writer.SetInt32Array("tokenizer.ggml.token_type", vocab.types);
      info.merges = static_cast<int64_t>(merges.size());
      writer.SetStringArray("tokenizer.ggml.merges", merges);
    }
    info.bos_id = qlorad_tokenizer->bos_id();
    info.eos_id = qlorad_tokenizer->eos_id();
    info.eos_token = qlorad_tokenizer->eos_token();
    if (info.bos_id) writer.SetUint32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(*info.bos_id));
    if (info.eos_id) writer.SetUint32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(*info.eos_id));
    if (model.value("unk_token", Json()).is_string()) {
      if (auto it = vocab.ids.find(model["unk_token"].get<std::string>()); it != vocab.ids.end())
        writer.SetUint32("tokenizer.ggml.unknown_token_id", static_cast<uint32_t>(it->second));
    }
    if (auto pad = IdOfConfigToken(tokenizer_config, "pad_token", vocab))
      writer.SetUint32("tokenizer.ggml.padding_token_id", static_cast<uint32_t>(*pad));
    const std::vector<int32_t> prefix = qlorad_tokenizer->SpecialPrefix(), suffix = qlorad_tokenizer->SpecialSuffix();
    info.add_bos = info.bos_id && prefix == std::vector<int32_t>{*info.bos_id};
    info.add_eos = info.eos_id && suffix == std::vector<int32_t>{*info.eos_id};
    if ((!prefix.empty() && !info.add_bos) || (!suffix.empty() && !info.add_eos))
      return absl::UnimplementedError(absl::StrCat(source, ": the post-processor adds tokens other than BOS/EOS, ",
                                                   "which llama.cpp cannot be told to add"));
    writer.SetBool("tokenizer.ggml.add_bos_token", info.add_bos);
    writer.SetBool("tokenizer.ggml.add_eos_token", info.add_eos);
    if (!qlorad_tokenizer->config().chat_template.empty())
      writer.SetString("tokenizer.chat_template", qlorad_tokenizer->config().chat_template);
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", e.what()));
  }
  return info;
}

}  // namespace qlorad::gguf

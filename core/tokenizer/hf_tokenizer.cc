#include "core/tokenizer/hf_tokenizer.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "core/tokenizer/utf8.h"

namespace qlorad::tokenizer {
namespace {

struct Affixes {
  std::vector<int32_t> prefix;
  std::vector<int32_t> suffix;
};

absl::StatusOr<int32_t> ProcessorToken(const nlohmann::json& pair, const std::string& where) {
  // ["</s>", 2]
  if (!pair.is_array() || pair.size() != 2 || !pair[1].is_number_integer()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": expected [token, id]"));
  }
  return pair[1].get<int32_t>();
}

absl::StatusOr<Affixes> PostProcessorFromJson(const nlohmann::json& json, const std::string& where) {
  Affixes out;
  if (json.is_null()) return out;
  const std::string type = json.value("type", "");
  if (type == "ByteLevel") return out;  // offsets only
  if (type == "TemplateProcessing") {
    if (!json.contains("single") || !json["single"].is_array()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".single: missing or not an array"));
    }
    const auto& specials = json.value("special_tokens", nlohmann::json::object());
    bool seen_a = false;
    for (size_t i = 0; i < json["single"].size(); ++i) {
      const auto& item = json["single"][i];
      const std::string item_where = absl::StrCat(where, ".single[", i, "]");
      if (item.contains("Sequence")) {
        if (seen_a) return absl::UnimplementedError(absl::StrCat(item_where, ": a template with $A twice is not supported"));
        seen_a = true;
      } else if (item.contains("SpecialToken")) {
        const std::string name = item["SpecialToken"].value("id", "");
        if (!specials.contains(name) || !specials[name].contains("ids") || !specials[name]["ids"].is_array()) {
          return absl::InvalidArgumentError(absl::StrCat(item_where, ": special token '", name,
                                                         "' has no entry with \"ids\" in ", where, ".special_tokens"));
        }
        for (const auto& id : specials[name]["ids"]) (seen_a ? out.suffix : out.prefix).push_back(id.get<int32_t>());
      } else {
        return absl::InvalidArgumentError(absl::StrCat(item_where, ": expected SpecialToken or Sequence"));
      }
    }
    if (!seen_a) return absl::InvalidArgumentError(absl::StrCat(where, ".single: the template has no $A"));
    return out;
  }
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    auto cls = ProcessorToken(json.value("cls", nlohmann::json()), where + ".cls");
    if (!cls.ok()) return cls.status();
    auto sep = ProcessorToken(json.value("sep", nlohmann::json()), where + ".sep");
    if (!sep.ok()) return sep.status();
    out.prefix = {*cls};
    out.suffix = {*sep};
    return out;
  }
  if (type == "Sequence") {
    if (!json.contains("processors") || !json["processors"].is_array()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".processors: missing or not an array"));
    }
    for (size_t i = 0; i < json["processors"].size(); ++i) {
      auto inner = PostProcessorFromJson(json["processors"][i], absl::StrCat(where, ".processors[", i, "]"));
      if (!inner.ok()) return inner.status();
      inner->prefix.insert(inner->prefix.end(), out.prefix.begin(), out.prefix.end());
      out.suffix.insert(out.suffix.end(), inner->suffix.begin(), inner->suffix.end());
      out.prefix = std::move(inner->prefix);
    }
    return out;
  }
  return absl::UnimplementedError(absl::StrCat(where, ": post-processor type '", type,
                                               "' is not supported by qlorad (supported: TemplateProcessing, "
                                               "ByteLevel, RobertaProcessing, BertProcessing, Sequence)"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<HfTokenizer>> HfTokenizer::Create(const std::string& json_text, const std::string& source,
                                                                 TokenizerConfig config) {
  try {
    return CreateUnguarded(json_text, source, std::move(config));
  } catch (const nlohmann::json::exception& e) {  // e.g. "fuse_unk": "yes" where a bool belongs
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": a field has an unexpected JSON type (", e.what(), "; hint: compare with a tokenizer.json "
                     "written by Hugging Face tokenizers)"));
  }
}

absl::StatusOr<std::unique_ptr<HfTokenizer>> HfTokenizer::CreateUnguarded(const std::string& json_text,
                                                                          const std::string& source,
                                                                          TokenizerConfig config) {
  nlohmann::json json = nlohmann::json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": not valid JSON (expected a tokenizer.json object)"));
  }
  auto fail = [&source](const absl::Status& status) {
    return absl::Status(status.code(), absl::StrCat(source, ": ", status.message()));
  };
  auto tok = std::unique_ptr<HfTokenizer>(new HfTokenizer());
  tok->config_ = std::move(config);
  if (!json.contains("model") || !json["model"].is_object()) return fail(absl::InvalidArgumentError("model: missing"));
  const std::string model_type = json["model"].value("type", "BPE");
  if (model_type != "BPE") {
    return fail(absl::UnimplementedError(absl::StrCat("model.type '", model_type,
                                                      "' is not supported by qlorad (only BPE; use a tokenizer.model "
                                                      "for SentencePiece Unigram models)")));
  }
  if (json.contains("truncation") && !json["truncation"].is_null()) {
    return fail(absl::UnimplementedError("truncation: a tokenizer.json with truncation enabled is not supported "
                                         "(set it to null)"));
  }
  auto model = BpeModel::FromJson(json["model"]);
  if (!model.ok()) return fail(model.status());
  tok->model_ = std::move(*model);
  if (json.contains("normalizer") && !json["normalizer"].is_null()) {
    auto n = NormalizerFromJson(json["normalizer"], "normalizer");
    if (!n.ok()) return fail(n.status());
    tok->normalizer_ = std::move(*n);
  }
  if (json.contains("pre_tokenizer") && !json["pre_tokenizer"].is_null()) {
    auto p = PreTokenizerFromJson(json["pre_tokenizer"], "pre_tokenizer");
    if (!p.ok()) return fail(p.status());
    tok->pre_tokenizer_ = std::move(*p);
  }
  if (json.contains("decoder") && !json["decoder"].is_null()) {
    auto d = DecoderFromJson(json["decoder"], "decoder");
    if (!d.ok()) return fail(d.status());
    tok->decoder_ = std::move(*d);
  }
  tok->vocab_size_ = tok->model_->size();
  if (json.contains("added_tokens") && json["added_tokens"].is_array()) {
    const auto& list = json["added_tokens"];
    for (size_t i = 0; i < list.size(); ++i) {
      const auto& t = list[i];
      if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() || !t.contains("content") ||
          !t["content"].is_string()) {
        return fail(absl::InvalidArgumentError(absl::StrCat("added_tokens[", i, "]: needs integer \"id\" and string \"content\"")));
      }
      if (t["id"].get<int64_t>() < 0 || t["id"].get<int64_t>() >= kMaxTokenId) {
        return fail(absl::InvalidArgumentError(
            absl::StrCat("added_tokens[", i, "]: id ", t["id"].get<int64_t>(), " is outside [0, ", kMaxTokenId, ")")));
      }
      AddedToken token;
      token.id = static_cast<int32_t>(t["id"].get<int64_t>());
      token.content = t["content"].get<std::string>();
      token.single_word = t.value("single_word", false);
      token.lstrip = t.value("lstrip", false);
      token.rstrip = t.value("rstrip", false);
      token.special = t.value("special", false);
      token.normalized = t.value("normalized", !token.special);
      tok->vocab_size_ = std::max(tok->vocab_size_, token.id + 1);
      tok->added_.Add(std::move(token));
    }
  }
  const Normalizer* normalizer = tok->normalizer_.get();
  tok->added_.Finalize([normalizer](const std::string& content) {
    std::string s = content;
    if (normalizer) normalizer->Normalize(&s);
    return s;
  });

  auto affixes = PostProcessorFromJson(json.value("post_processor", nlohmann::json()), "post_processor");
  if (!affixes.ok()) return fail(affixes.status());
  tok->special_prefix_ = std::move(affixes->prefix);
  tok->special_suffix_ = std::move(affixes->suffix);

  tok->ResolveSpecialIds({"<s>", "<|begin_of_text|>", "<bos>", "<|endoftext|>"},
                         {"</s>", "<|end_of_text|>", "<eos>", "<|endoftext|>"});
  // transformers' LlamaTokenizerFast rebuilds the post-processor from add_bos/add_eos.
  if (tok->config_.add_bos_token || tok->config_.add_eos_token) {
    const bool add_bos = tok->config_.add_bos_token.value_or(false);
    const bool add_eos = tok->config_.add_eos_token.value_or(false);
    if ((add_bos && !tok->bos_id_) || (add_eos && !tok->eos_id_)) {
      return fail(absl::InvalidArgumentError(absl::StrCat("tokenizer_config.json asks for add_", add_bos && !tok->bos_id_ ? "bos" : "eos",
                                                          "_token but that token is not in the vocabulary")));
    }
    tok->special_prefix_.clear();
    tok->special_suffix_.clear();
    if (add_bos) tok->special_prefix_.push_back(*tok->bos_id_);
    if (add_eos) tok->special_suffix_.push_back(*tok->eos_id_);
  }
  return tok;
}

absl::Status HfTokenizer::EncodePiece(std::string_view piece, bool at_input_start, std::vector<int32_t>* ids) const {
  std::string normalized(piece);
  if (normalizer_) normalizer_->Normalize(&normalized);
  std::vector<PreToken> pre_tokens;
  auto process = [&](std::string_view text, bool at_start) -> absl::Status {
    pre_tokens.clear();
    pre_tokens.push_back({std::string(text), at_start});
    if (pre_tokenizer_) pre_tokenizer_->PreTokenize(&pre_tokens);
    for (const PreToken& p : pre_tokens) {
      if (auto status = model_->Tokenize(p.text, ids); !status.ok()) return status;
    }
    return absl::OkStatus();
  };
  if (!added_.has_normalized_tokens()) return process(normalized, at_input_start);
  for (const AddedSplit& split : added_.SplitNormalized(normalized)) {
    if (split.id) {
      ids->push_back(*split.id);
    } else if (!split.text.empty()) {
      if (auto status = process(split.text, at_input_start && split.offset == 0); !status.ok()) return status;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int32_t>> HfTokenizer::Encode(std::string_view text, bool add_special_tokens) const {
  std::string sanitized;
  if (!IsValidUtf8(text)) {
    sanitized = SanitizeUtf8(text);
    text = sanitized;
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + special_prefix_.size() + special_suffix_.size() + 1);
  if (add_special_tokens) ids.insert(ids.end(), special_prefix_.begin(), special_prefix_.end());
  for (const AddedSplit& split : added_.SplitRaw(text)) {
    if (split.id) {
      ids.push_back(*split.id);
      continue;
    }
    if (split.text.empty()) continue;  // tokenizers drops empty splits before normalizing
    if (auto status = EncodePiece(split.text, split.offset == 0, &ids); !status.ok()) return status;
  }
  if (add_special_tokens) ids.insert(ids.end(), special_suffix_.begin(), special_suffix_.end());
  return ids;
}

std::string HfTokenizer::Decode(absl::Span<const int32_t> ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (const AddedToken* added = added_.FindById(id)) {
      if (skip_special_tokens && added->special) continue;
      tokens.push_back(added->content);
    } else if (const std::string* token = model_->IdToToken(id)) {
      tokens.push_back(*token);
    }
  }
  if (!decoder_) {
    std::string joined;
    for (size_t i = 0; i < tokens.size(); ++i) absl::StrAppend(&joined, i ? " " : "", tokens[i]);
    return SanitizeUtf8(joined);
  }
  decoder_->DecodeChain(&tokens);
  std::string out;
  for (const std::string& t : tokens) out += t;
  return SanitizeUtf8(out);
}

std::optional<int32_t> HfTokenizer::TokenToId(std::string_view token) const {
  if (auto id = added_.FindByContent(token)) return id;
  return model_->TokenToId(token);
}

std::optional<std::string> HfTokenizer::IdToToken(int32_t id) const {
  if (const AddedToken* added = added_.FindById(id)) return added->content;
  if (const std::string* token = model_->IdToToken(id)) return *token;
  return std::nullopt;
}

bool HfTokenizer::IsSpecial(int32_t id) const {
  const AddedToken* added = added_.FindById(id);
  return added != nullptr && added->special;
}

}  // namespace qlorad::tokenizer

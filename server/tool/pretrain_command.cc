// qlorad-tool pretrain: a small Llama-architecture model pretrained from random
// weights (every parameter, causal LM) on plain text for a bounded time, written as a
// Hugging Face model directory with the tokenizer and a pretrain.json record.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/model/loader.h"
#include "core/model/random_model.h"
#include "core/tokenizer/tokenizer.h"
#include "core/train/pretrain.h"
#include "core/train/pretrain_corpus.h"
#include "core/util/file_util.h"
#include "core/util/sha256.h"
#include "core/util/status_macros.h"
#include "nlohmann/json.hpp"
#include "server/tool/commands.h"
#include "server/tool/flags.h"

namespace qlorad::tool {
namespace {

namespace fs = std::filesystem;

constexpr char kUsage[] =
    "usage: qlorad-tool pretrain --text-dir DIR [--jsonl FILE] --tokenizer PATH --out DIR\n"
    "         [--layers 4] [--hidden 256] [--heads 8] [--kv-heads 4] [--intermediate 688] [--untied]\n"
    "         [--max-seconds 240] [--max-steps 0] [--batch-size 8] [--seq-len 128] [--lr 3e-3] [--seed 1]\n"
    "         [--held-out-every 10] [--eval-windows 64] [--skip-if-current] [--quiet]\n"
    "  Every *.txt of --text-dir is a document (every N-th, by sorted name, is held out for\n"
    "  perplexity); each {\"text\": ...} line of --jsonl is a training document. The budget is\n"
    "  --max-seconds of wall time and/or --max-steps (0 = none), whichever ends first.\n"
    "  --skip-if-current: do nothing when DIR/pretrain.json records the same data and settings.\n";

const std::vector<std::string> kRecipeFlags = {"layers",     "hidden",     "heads",          "kv-heads",     "intermediate",
                                                "max-seconds", "max-steps", "batch-size",     "seq-len",      "lr",
                                                "seed",       "untied",     "held-out-every", "eval-windows", "tokenizer"};

absl::StatusOr<std::vector<PretrainDocument>> ReadDocuments(const Flags& flags) {
  std::vector<PretrainDocument> documents;
  QLORAD_ASSIGN_OR_RETURN(std::string text_dir, flags.GetRequired("text-dir"));
  std::vector<fs::path> files;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(text_dir, error))
    if (entry.path().extension() == ".txt") files.push_back(entry.path());
  if (error || files.empty())
    return absl::InvalidArgumentError(
        absl::StrCat("--text-dir ", text_dir, ": no *.txt files", error ? " (" + error.message() + ")" : ""));
  std::sort(files.begin(), files.end());
  for (const fs::path& file : files) {
    QLORAD_ASSIGN_OR_RETURN(std::string text, ReadFileToString(file.string()));
    documents.push_back({file.filename().string(), std::move(text), false});
  }
  QLORAD_ASSIGN_OR_RETURN(long long every, flags.GetInt("held-out-every", 10));
  HoldOutEvery(documents, every);
  if (!flags.Has("jsonl")) return documents;
  const std::string jsonl = flags.GetOr("jsonl", "");
  std::ifstream in(jsonl);
  if (!in) return absl::NotFoundError(absl::StrCat("--jsonl ", jsonl, ": cannot open"));
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (line.empty()) continue;
    nlohmann::json row = nlohmann::json::parse(line, nullptr, false);
    if (!row.is_object() || !row.contains("text") || !row["text"].is_string())
      return absl::InvalidArgumentError(absl::StrCat("--jsonl ", jsonl, " line ", number, ": not an object with a string \"text\""));
    documents.push_back({absl::StrCat(jsonl, ":", number), row["text"].get<std::string>(), false});
  }
  return documents;
}

// A digest of the documents (names, texts, held-out marks) and every setting that shapes the model.
std::string RecipeDigest(const std::vector<PretrainDocument>& documents, const Flags& flags) {
  Sha256 sha;
  for (const PretrainDocument& d : documents) sha.Update(absl::StrCat(d.name, "\n", d.text.size(), "\n", d.held_out, "\n", d.text));
  for (const std::string& name : kRecipeFlags) sha.Update(absl::StrCat("--", name, "=", flags.GetOr(name, "-"), "\n"));
  return sha.HexDigest();
}

bool IsCurrent(const std::string& out, const std::string& recipe) {
  absl::StatusOr<std::string> text = ReadFileToString(out + "/pretrain.json");
  if (!text.ok() || !fs::exists(out + "/model.safetensors")) return false;
  nlohmann::json record = nlohmann::json::parse(*text, nullptr, false);
  return record.is_object() && record.value("recipe_sha256", "") == recipe;
}

// stanford_alpaca's single-turn prompt as a chat template: what the serving engine and the
// trainer detect as the "alpaca" prompt format (core/tokenizer/prompt_format.h).
constexpr char kAlpacaTemplate[] =
    "{{ 'Below is an instruction that describes a task. Write a response that appropriately completes the "
    "request.\\n\\n### Instruction:\\n' + messages[0]['content'] + '\\n\\n### Response:' }}"
    "{% if messages|length > 1 %}{{ '\\n' + messages[1]['content'] + eos_token }}{% endif %}";

// A base model pretrained on plain text has no chat format of its own; it gets the alpaca
// instruction format (set only when the copied tokenizer_config.json names none).
absl::Status AddChatTemplate(const std::string& dir) {
  const std::string path = dir + "/tokenizer_config.json";
  nlohmann::json config = nlohmann::json::object();
  if (fs::exists(path)) {
    QLORAD_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
    config = nlohmann::json::parse(text, nullptr, false);
    if (!config.is_object()) return absl::InvalidArgumentError(absl::StrCat(path, ": not a JSON object"));
  }
  if (config.contains("chat_template")) return absl::OkStatus();
  config["chat_template"] = kAlpacaTemplate;
  return WriteFileAtomically(path, config.dump(2) + "\n");
}

absl::StatusOr<PretrainOptions> OptionsFromFlags(const Flags& flags) {
  PretrainOptions o;
  QLORAD_ASSIGN_OR_RETURN(o.max_seconds, flags.GetDouble("max-seconds", 240));
  QLORAD_ASSIGN_OR_RETURN(o.max_steps, flags.GetInt("max-steps", 0));
  QLORAD_ASSIGN_OR_RETURN(o.batch_size, flags.GetInt("batch-size", o.batch_size));
  QLORAD_ASSIGN_OR_RETURN(o.seq_len, flags.GetInt("seq-len", o.seq_len));
  QLORAD_ASSIGN_OR_RETURN(o.learning_rate, flags.GetDouble("lr", o.learning_rate));
  QLORAD_ASSIGN_OR_RETURN(long long seed, flags.GetInt("seed", 1));
  o.seed = static_cast<uint64_t>(seed);
  return o;
}

absl::StatusOr<ModelConfig> ConfigFromFlags(const Flags& flags, int64_t vocab) {
  QLORAD_ASSIGN_OR_RETURN(long long layers, flags.GetInt("layers", 4));
  QLORAD_ASSIGN_OR_RETURN(long long hidden, flags.GetInt("hidden", 256));
  QLORAD_ASSIGN_OR_RETURN(long long heads, flags.GetInt("heads", 8));
  QLORAD_ASSIGN_OR_RETURN(long long kv_heads, flags.GetInt("kv-heads", 4));
  QLORAD_ASSIGN_OR_RETURN(long long intermediate, flags.GetInt("intermediate", 688));
  if (layers <= 0 || heads <= 0 || hidden % heads != 0 || kv_heads <= 0 || heads % kv_heads != 0 || intermediate <= 0)
    return absl::InvalidArgumentError("--layers, --intermediate positive; --hidden a multiple of --heads, of --kv-heads");
  ModelConfig config = MakeConfig("llama", layers, hidden, heads, kv_heads, intermediate, vocab, !flags.GetBool("untied"));
  config.max_position_embeddings = 2048;
  return config;
}

// One line, rewritten in place: [#####-----] 50% 120/240 s step 80 loss 5.123 2400 tok/s
void PrintProgress(const PretrainEvent& e) {
  const int filled = static_cast<int>(e.progress * 30);
  std::fprintf(stderr, "\rpretrain [%s%s] %3.0f%% %4.0f s step %lld loss %.3f lr %.1e %.0f tok/s", std::string(filled, '#').c_str(),
               std::string(30 - filled, '-').c_str(), 100 * e.progress, e.elapsed_seconds,
               static_cast<long long>(e.step), e.loss, e.learning_rate, e.tokens_per_second);
}

absl::Status Pretrain(const Args& args) {
  QLORAD_ASSIGN_OR_RETURN(
      Flags flags, Flags::Parse(args,
                                {"text-dir", "jsonl", "tokenizer", "out", "layers", "hidden", "heads", "kv-heads",
                                 "intermediate", "max-seconds", "max-steps", "batch-size", "seq-len", "lr", "seed",
                                 "held-out-every", "eval-windows"},
                                {"untied", "skip-if-current", "quiet", "help"}));
  if (flags.GetBool("help")) {
    std::fputs(kUsage, stdout);
    return absl::OkStatus();
  }
  QLORAD_ASSIGN_OR_RETURN(std::string out, flags.GetRequired("out"));
  QLORAD_ASSIGN_OR_RETURN(std::string tokenizer_path, flags.GetRequired("tokenizer"));
  QLORAD_ASSIGN_OR_RETURN(std::vector<PretrainDocument> documents, ReadDocuments(flags));
  const std::string recipe = RecipeDigest(documents, flags);
  if (flags.GetBool("skip-if-current") && IsCurrent(out, recipe)) {
    std::printf("pretrained model %s is current (recipe %s); not retraining\n", out.c_str(), recipe.substr(0, 12).c_str());
    return absl::OkStatus();
  }
  QLORAD_ASSIGN_OR_RETURN(PretrainOptions options, OptionsFromFlags(flags));
  if (options.max_seconds <= 0 && options.max_steps <= 0)
    return absl::InvalidArgumentError("pretraining needs a budget (hint: --max-seconds S or --max-steps N)");
  QLORAD_ASSIGN_OR_RETURN(long long eval_windows, flags.GetInt("eval-windows", 64));
  QLORAD_ASSIGN_OR_RETURN(std::unique_ptr<tokenizer::Tokenizer> tokenizer, tokenizer::Tokenizer::Load(tokenizer_path));
  QLORAD_ASSIGN_OR_RETURN(PretrainCorpus corpus, TokenizeCorpus(documents, *tokenizer));

  // Everything is built in a sibling directory and renamed over `out` at the end.
  const std::string work = out + ".partial";
  std::error_code ignored;
  fs::remove_all(work, ignored);
  RandomModelOptions random;
  QLORAD_ASSIGN_OR_RETURN(random.config, ConfigFromFlags(flags, tokenizer->vocab_size()));
  random.seed = options.seed;
  random.tokenizer_path = tokenizer_path;
  QLORAD_RETURN_IF_ERROR(WriteRandomModel(work, random));
  QLORAD_RETURN_IF_ERROR(AddChatTemplate(work));
  LoadOptions load;
  load.compute_fingerprint = false;
  QLORAD_ASSIGN_OR_RETURN(LoadedModel loaded, LoadModel(work, load));
  const std::vector<at::Tensor> params = MakeFullyTrainable(loaded.model);
  int64_t parameter_count = 0;
  for (const at::Tensor& p : params) parameter_count += p.numel();
  std::printf("pretraining %lld parameters on %lld tokens (%lld documents); held out: %lld tokens (%lld documents)\n",
              static_cast<long long>(parameter_count), static_cast<long long>(corpus.train.size()),
              static_cast<long long>(corpus.train_documents), static_cast<long long>(corpus.held_out.size()),
              static_cast<long long>(corpus.held_out_documents));
  std::fflush(stdout);
  QLORAD_ASSIGN_OR_RETURN(double before, Perplexity(loaded.model, corpus.held_out, options.seq_len, eval_windows));
  const bool quiet = flags.GetBool("quiet");
  QLORAD_ASSIGN_OR_RETURN(PretrainSummary summary, qlorad::Pretrain(loaded.model, corpus.train, options, [&](const PretrainEvent& e) {
                            if (!quiet) PrintProgress(e);
                            return true;
                          }));
  if (!quiet) std::fputc('\n', stderr);
  QLORAD_ASSIGN_OR_RETURN(double after, Perplexity(loaded.model, corpus.held_out, options.seq_len, eval_windows));
  QLORAD_RETURN_IF_ERROR(WriteModelWeights(loaded.model, work));
  nlohmann::json record = {
      {"recipe_sha256", recipe}, {"parameters", parameter_count}, {"seconds", summary.seconds},
      {"steps", summary.steps}, {"tokens_seen", summary.tokens_seen},
      {"tokens_per_second", summary.tokens_seen / std::max(summary.seconds, 1e-9)},
      {"train_loss_first", summary.first_loss}, {"train_loss_last", summary.last_loss},
      {"heldout_perplexity_before", before}, {"heldout_perplexity_after", after},
      {"train_tokens", corpus.train.size()}, {"heldout_tokens", corpus.held_out.size()},
      {"heldout_documents", corpus.held_out_names}, {"eval_windows", eval_windows},
      {"max_seconds", options.max_seconds}, {"max_steps", options.max_steps}, {"batch_size", options.batch_size},
      {"seq_len", options.seq_len}, {"learning_rate", options.learning_rate}, {"seed", options.seed}};
  QLORAD_RETURN_IF_ERROR(WriteFileAtomically(work + "/pretrain.json", record.dump(2) + "\n"));
  fs::remove_all(out, ignored);
  std::error_code renamed;
  fs::rename(work, out, renamed);
  if (renamed) return absl::InternalError(absl::StrCat("renaming ", work, " to ", out, ": ", renamed.message()));
  std::printf("pretrained %lld steps (%lld tokens) in %.0f s, %.0f tok/s; held-out perplexity %.1f -> %.1f (%.1fx lower); "
              "model written to %s\n",
              static_cast<long long>(summary.steps), static_cast<long long>(summary.tokens_seen), summary.seconds,
              summary.tokens_seen / std::max(summary.seconds, 1e-9), before, after, before / after, out.c_str());
  return absl::OkStatus();
}

}  // namespace

int RunPretrain(const Args& args) { return ReportStatus("pretrain", Pretrain(args)); }

}  // namespace qlorad::tool

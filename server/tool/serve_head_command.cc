// qlorad-tool choose-serve-head: which vocabulary-head precision (--serve-head) one
// deployment can serve with. Decodes a dataset's hold-out classification prompts greedily
// on the fused CPU path with every head (core/model/head_trials.h), reads each
// continuation as a label, and chooses the fastest head whose hold-out macro-F1 is within
// --max-f1-drop of the fp32 head's and whose greedy tokens reproduce at least
// --min-agreement of fp32's. Prints one JSON object (also to --out).
#include <algorithm>
#include <cctype>
#include <cstdio>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "core/data/dataset_store.h"
#include "core/eval/classification.h"
#include "core/eval/holdout.h"
#include "core/model/head_trials.h"
#include "core/tokenizer/instruction_prompt.h"
#include "core/tokenizer/prompt_format.h"
#include "core/tokenizer/tokenizer.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"
#include "nlohmann/json.hpp"
#include "server/tool/commands.h"
#include "server/tool/flags.h"
#include "server/tool/model_flags.h"

namespace qlorad::tool {
namespace {

constexpr char kUsage[] =
    "usage: qlorad-tool choose-serve-head --dataset-root DIR --dataset ID <model flags>\n"
    "       [--limit 200] [--max-new-tokens 8] [--activations fp32|int8] [--max-f1-drop 0.01]\n"
    "       [--min-agreement 0.99] [--prompt-format NAME] [--out FILE] [--predictions FILE]\n"
    "  Greedy decoding of the first --limit hold-out classification prompts with each head\n"
    "  (fp32, bf16, int8, nf4) on the fused CPU path; a continuation counts as the label it\n"
    "  starts with (case-insensitive). Chosen: the fastest head with macro-F1 >= fp32's minus\n"
    "  --max-f1-drop and token agreement with fp32 >= --min-agreement. --predictions writes one JSON\n"
    "  line per head and example: head, item, label, continuation, predicted.\n";

constexpr char kUnparsed[] = "(no label)";

// The label `text` starts with (case-insensitive, ignoring leading space; the longest
// match; a label must end at a non-alphanumeric character), or kUnparsed.
std::string LabelOf(const std::string& text, const std::vector<std::string>& labels) {
  const std::string answer = absl::AsciiStrToLower(absl::StripLeadingAsciiWhitespace(text));
  std::string best = kUnparsed;
  for (const std::string& label : labels) {
    const std::string want = absl::AsciiStrToLower(label);
    if (answer.compare(0, want.size(), want) != 0) continue;
    if (answer.size() > want.size() && std::isalnum(static_cast<unsigned char>(answer[want.size()]))) continue;
    if (best == kUnparsed || label.size() > best.size()) best = label;
  }
  return best;
}

// Macro-F1 over the gold labels (sklearn's f1_score(average="macro", labels=gold)).
absl::StatusOr<double> MacroF1(const std::vector<std::string>& truth, const std::vector<std::string>& predicted,
                               const std::vector<std::string>& gold) {
  QLORAD_ASSIGN_OR_RETURN(eval::ClassificationReport report, eval::ComputeClassificationReport(truth, predicted));
  double sum = 0;
  for (size_t i = 0; i < report.labels.size(); ++i)
    if (std::find(gold.begin(), gold.end(), report.labels[i]) != gold.end()) sum += report.per_class[i].f1;
  return sum / static_cast<double>(gold.size());
}

struct Tolerance {
  double max_f1_drop = 0.01;
  double min_agreement = 0.99;
};

// One JSON row per trial, "within_tolerance" set; one line per head and example appended
// to *predictions; returns the chosen head's name.
absl::StatusOr<std::string> ScoreTrials(const std::vector<HeadTrial>& trials, const eval::HoldoutItems& items,
                                        const tokenizer::Tokenizer& tok, const Tolerance& tolerance,
                                        nlohmann::ordered_json* rows, std::string* predictions) {
  std::vector<std::string> gold = items.references;
  std::sort(gold.begin(), gold.end());
  gold.erase(std::unique(gold.begin(), gold.end()), gold.end());
  double reference_f1 = 0;
  const HeadTrial* chosen = nullptr;
  for (const HeadTrial& trial : trials) {
    std::vector<std::string> predicted;
    for (size_t i = 0; i < trial.continuations.size(); ++i) {
      const auto& tokens = trial.continuations[i];
      const std::string text = tok.Decode(std::vector<int32_t>(tokens.begin(), tokens.end()), true);
      predicted.push_back(LabelOf(text, gold));
      *predictions += nlohmann::ordered_json({{"head", HeadPrecisionName(trial.head)}, {"item", items.ids[i]},
                                              {"label", items.references[i]}, {"continuation", text},
                                              {"predicted", predicted.back()}}).dump() + "\n";
    }
    QLORAD_ASSIGN_OR_RETURN(double f1, MacroF1(items.references, predicted, gold));
    if (&trial == &trials.front()) reference_f1 = f1;
    const bool within = f1 >= reference_f1 - tolerance.max_f1_drop && trial.token_agreement >= tolerance.min_agreement;
    if (within && (chosen == nullptr || trial.decode_tokens_per_second > chosen->decode_tokens_per_second))
      chosen = &trial;
    const int64_t unparsed = std::count(predicted.begin(), predicted.end(), std::string(kUnparsed));
    rows->push_back({{"head", HeadPrecisionName(trial.head)}, {"macro_f1", f1}, {"unparsed", unparsed},
                     {"token_agreement", trial.token_agreement}, {"identical_continuations", trial.identical_share},
                     {"decode_tokens_per_second", trial.decode_tokens_per_second}, {"within_tolerance", within}});
  }
  // The fp32 trial is within any valid tolerance (max_f1_drop >= 0, min_agreement <= 1).
  if (chosen == nullptr) return absl::InternalError("no head within tolerance, not even fp32");
  return std::string(HeadPrecisionName(chosen->head));
}

absl::StatusOr<std::vector<std::vector<int64_t>>> PromptIds(const eval::HoldoutItems& items,
                                                            tokenizer::PromptFormat format,
                                                            const tokenizer::Tokenizer& tok) {
  std::vector<std::vector<int64_t>> prompts;
  for (const std::string& text : items.prompts) {
    QLORAD_ASSIGN_OR_RETURN(auto segments, tokenizer::RenderClassification(format, text, "", tok));
    QLORAD_ASSIGN_OR_RETURN(std::vector<int64_t> ids, tokenizer::TokenizePrompt(segments, tok));
    prompts.push_back(std::move(ids));
  }
  return prompts;
}

absl::Status ChooseServeHead(const Args& args) {
  std::set<std::string> value_flags = kModelValueFlags, bool_flags = kModelBoolFlags;
  value_flags.insert({"dataset-root", "dataset", "limit", "max-new-tokens", "activations", "max-f1-drop",
                      "min-agreement", "prompt-format", "out", "predictions"});
  bool_flags.insert("help");
  QLORAD_ASSIGN_OR_RETURN(Flags flags, Flags::Parse(args, value_flags, bool_flags));
  if (flags.GetBool("help")) {
    std::printf("%s%s", kUsage, kModelUsage);
    return absl::OkStatus();
  }
  QLORAD_ASSIGN_OR_RETURN(std::string root, flags.GetRequired("dataset-root"));
  QLORAD_ASSIGN_OR_RETURN(std::string dataset, flags.GetRequired("dataset"));
  QLORAD_ASSIGN_OR_RETURN(std::string model_dir, flags.GetRequired("model"));
  QLORAD_ASSIGN_OR_RETURN(long long limit, flags.GetInt("limit", 200));
  HeadTrialOptions options;
  QLORAD_ASSIGN_OR_RETURN(options.max_new_tokens, flags.GetInt("max-new-tokens", 8));
  QLORAD_ASSIGN_OR_RETURN(FusedDecoderOptions activations, ParseFusedDecoderOptions("fp32", flags.GetOr("activations", "fp32")));
  options.int8_activations = activations.int8_activations;
  Tolerance tolerance;
  QLORAD_ASSIGN_OR_RETURN(tolerance.max_f1_drop, flags.GetDouble("max-f1-drop", 0.01));
  QLORAD_ASSIGN_OR_RETURN(tolerance.min_agreement, flags.GetDouble("min-agreement", 0.99));
  if (limit < 1) return absl::InvalidArgumentError("--limit: must be at least 1");
  if (!(tolerance.max_f1_drop >= 0))
    return absl::InvalidArgumentError("--max-f1-drop: must be >= 0 (hint: 0.01 allows one point of macro-F1 less)");
  if (!(tolerance.min_agreement >= 0 && tolerance.min_agreement <= 1))
    return absl::InvalidArgumentError("--min-agreement: must be in [0, 1] (hint: 0.99)");
  QLORAD_ASSIGN_OR_RETURN(std::unique_ptr<tokenizer::Tokenizer> tok, tokenizer::Tokenizer::Load(model_dir));
  QLORAD_ASSIGN_OR_RETURN(tokenizer::PromptFormat format,
                          flags.Has("prompt-format") ? tokenizer::PromptFormatFromName(flags.GetOr("prompt-format", ""))
                                                     : tokenizer::DetectPromptFormat(*tok));
  QLORAD_ASSIGN_OR_RETURN(auto store, data::DatasetStore::Open(root));
  QLORAD_ASSIGN_OR_RETURN(eval::HoldoutItems items, eval::ReadHoldout(*store, dataset, limit));
  if (items.task != eval::TaskKind::kClassification || items.preference)
    return absl::FailedPreconditionError(absl::StrCat("--dataset ", dataset, ": a classification dataset is needed"));
  QLORAD_ASSIGN_OR_RETURN(std::vector<std::vector<int64_t>> prompts, PromptIds(items, format, *tok));
  QLORAD_ASSIGN_OR_RETURN(ToolModel model, LoadModelFromFlags(flags, "cpu"));
  options.stop_ids = model.loaded.config.eos_token_ids;
  QLORAD_ASSIGN_OR_RETURN(std::vector<HeadTrial> trials, RunHeadTrials(model.loaded.model, prompts, options));
  nlohmann::ordered_json report;
  report["dataset"] = dataset;
  report["examples"] = prompts.size();
  report["activations"] = options.int8_activations ? "int8" : "fp32";
  report["tolerance"] = {{"max_f1_drop", tolerance.max_f1_drop}, {"min_token_agreement", tolerance.min_agreement}};
  report["trials"] = nlohmann::ordered_json::array();
  std::string predictions;
  QLORAD_ASSIGN_OR_RETURN(std::string chosen,
                          ScoreTrials(trials, items, *tok, tolerance, &report["trials"], &predictions));
  report["chosen"] = chosen;
  if (flags.Has("predictions"))
    QLORAD_RETURN_IF_ERROR(WriteFileAtomically(flags.GetOr("predictions", ""), predictions));
  const std::string text = report.dump(2) + "\n";
  if (flags.Has("out")) QLORAD_RETURN_IF_ERROR(WriteFileAtomically(flags.GetOr("out", ""), text));
  std::fputs(text.c_str(), stdout);
  return absl::OkStatus();
}

}  // namespace

int RunChooseServeHead(const Args& args) { return ReportStatus("choose-serve-head", ChooseServeHead(args)); }

}  // namespace qlorad::tool

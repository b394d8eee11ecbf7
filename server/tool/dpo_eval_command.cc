// qlorad-tool dpo-eval: scores a preference dataset's HOLD-OUT pairs with an adapter
// and with the base (the adapter disabled) and prints one JSON object: the DPO reward
// accuracy, the adapter's and the base's preference for the chosen completion, and the
// paired gain, each with a percentile-bootstrap interval (core/eval/bootstrap.h).
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "core/data/dataset_store.h"
#include "core/eval/bootstrap.h"
#include "core/eval/evaluation_access.h"
#include "core/tokenizer/prompt_format.h"
#include "core/tokenizer/tokenizer.h"
#include "core/train/dpo_loss.h"
#include "core/train/examples.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"
#include "server/tool/commands.h"
#include "server/tool/flags.h"
#include "server/tool/model_flags.h"

namespace qlorad::tool {
namespace {

constexpr char kUsage[] =
    "usage: qlorad-tool dpo-eval --dataset-root DIR --dataset ID --adapter PEFT_DIR <model flags>\n"
    "       [--beta 0.1] [--prompt-format NAME] [--max-seq-len 512] [--batch-size 8] [--resamples 1000] [--out FILE]\n"
    "       [--dump-pairs FILE]  (JSONL, one line per pair: token ids, trained masks and the four log-probs)\n"
    "  Scores the dataset's hold-out preference pairs {prompt, chosen, rejected}: per pair the summed\n"
    "  completion log-probs under the adapter (policy) and the base (adapter disabled, reference).\n"
    "  reward_accuracy: (policy - reference) log-ratio of chosen > rejected; adapter_preference / base_preference:\n"
    "  log p(chosen) > log p(rejected) under each; preference_gain: their paired difference. 95% bootstrap intervals.\n";

absl::StatusOr<tokenizer::PromptFormat> FormatFromFlags(const Flags& flags, const std::string& model_dir) {
  if (flags.Has("prompt-format")) return tokenizer::PromptFormatFromName(flags.GetOr("prompt-format", ""));
  QLORAD_ASSIGN_OR_RETURN(std::unique_ptr<tokenizer::Tokenizer> tok, tokenizer::Tokenizer::Load(model_dir));
  return tokenizer::DetectPromptFormat(*tok);
}

// 1 where a > b, per pair.
std::vector<double> Wins(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> out(a.size());
  for (size_t i = 0; i < a.size(); ++i) out[i] = a[i] > b[i] ? 1.0 : 0.0;
  return out;
}

std::vector<double> Difference(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> out(a.size());
  for (size_t i = 0; i < a.size(); ++i) out[i] = a[i] - b[i];
  return out;
}

absl::StatusOr<nlohmann::ordered_json> Report(const PreferenceScores& s, double beta, int resamples) {
  const size_t n = s.policy_chosen.size();
  const std::vector<double> chosen_ratio = Difference(s.policy_chosen, s.reference_chosen);
  const std::vector<double> rejected_ratio = Difference(s.policy_rejected, s.reference_rejected);
  const std::vector<double> reward_wins = Wins(chosen_ratio, rejected_ratio);
  const std::vector<double> adapter_wins = Wins(s.policy_chosen, s.policy_rejected);
  const std::vector<double> base_wins = Wins(s.reference_chosen, s.reference_rejected);
  eval::BootstrapOptions options;
  options.resamples = resamples;
  QLORAD_ASSIGN_OR_RETURN(auto reward_ci, eval::BootstrapInterval(n, eval::MeanOf(reward_wins), options));
  QLORAD_ASSIGN_OR_RETURN(auto adapter_ci, eval::BootstrapInterval(n, eval::MeanOf(adapter_wins), options));
  QLORAD_ASSIGN_OR_RETURN(auto base_ci, eval::BootstrapInterval(n, eval::MeanOf(base_wins), options));
  QLORAD_ASSIGN_OR_RETURN(auto gain_ci, eval::BootstrapDifference(n, eval::MeanOf(adapter_wins), eval::MeanOf(base_wins), options));
  QLORAD_ASSIGN_OR_RETURN(auto margin_ci, eval::BootstrapInterval(n, eval::MeanOf(Difference(
      Difference(s.policy_chosen, s.policy_rejected), Difference(s.reference_chosen, s.reference_rejected))), options));
  const DpoMetrics m = SummarizePreferences(s, beta);
  nlohmann::ordered_json out;
  out["pairs"] = n;
  out["beta"] = beta;
  out["reward_accuracy"] = eval::ConfidenceIntervalToJson(reward_ci);
  out["adapter_preference"] = eval::ConfidenceIntervalToJson(adapter_ci);
  out["base_preference"] = eval::ConfidenceIntervalToJson(base_ci);
  out["preference_gain"] = eval::ConfidenceIntervalToJson(gain_ci);
  out["logp_margin_gain"] = eval::ConfidenceIntervalToJson(margin_ci);  // mean of (πc − πr) − (rc − rr), nats
  out["dpo"] = {{"loss", m.loss}, {"chosen_reward", m.chosen_reward}, {"rejected_reward", m.rejected_reward},
                {"margin", m.margin}, {"accuracy", m.accuracy}};
  return out;
}

// One JSON line per pair: what an external check needs to recompute the scores.
std::string PairLines(const std::vector<PreferencePair>& pairs, const PreferenceScores& s) {
  std::string out;
  for (size_t i = 0; i < pairs.size(); ++i) {
    const nlohmann::json line = {{"chosen_ids", pairs[i].chosen.ids}, {"chosen_trainable", pairs[i].chosen.trainable},
                                 {"rejected_ids", pairs[i].rejected.ids}, {"rejected_trainable", pairs[i].rejected.trainable},
                                 {"policy_chosen", s.policy_chosen[i]}, {"policy_rejected", s.policy_rejected[i]},
                                 {"reference_chosen", s.reference_chosen[i]}, {"reference_rejected", s.reference_rejected[i]}};
    out += line.dump() + "\n";
  }
  return out;
}

absl::Status DpoEval(const Args& args) {
  std::set<std::string> value_flags = kModelValueFlags, bool_flags = kModelBoolFlags;
  value_flags.insert({"dataset-root", "dataset", "beta", "prompt-format", "max-seq-len", "batch-size", "resamples", "out", "dump-pairs"});
  bool_flags.insert({"help"});
  QLORAD_ASSIGN_OR_RETURN(Flags flags, Flags::Parse(args, value_flags, bool_flags));
  if (flags.GetBool("help")) {
    std::printf("%s%s", kUsage, kModelUsage);
    return absl::OkStatus();
  }
  QLORAD_ASSIGN_OR_RETURN(std::string root, flags.GetRequired("dataset-root"));
  QLORAD_ASSIGN_OR_RETURN(std::string dataset, flags.GetRequired("dataset"));
  QLORAD_ASSIGN_OR_RETURN(std::string model_dir, flags.GetRequired("model"));
  if (!flags.Has("adapter")) return absl::InvalidArgumentError("--adapter: required (the adapter to compare with its base)");
  QLORAD_ASSIGN_OR_RETURN(double beta, flags.GetDouble("beta", 0.1));
  QLORAD_ASSIGN_OR_RETURN(long long max_seq_len, flags.GetInt("max-seq-len", 512));
  QLORAD_ASSIGN_OR_RETURN(long long batch_size, flags.GetInt("batch-size", 8));
  QLORAD_ASSIGN_OR_RETURN(long long resamples, flags.GetInt("resamples", 1000));
  if (!(beta > 0)) return absl::InvalidArgumentError("--beta: must be positive");
  if (max_seq_len < 2 || batch_size < 1) return absl::InvalidArgumentError("--max-seq-len >= 2 and --batch-size >= 1");
  QLORAD_ASSIGN_OR_RETURN(tokenizer::PromptFormat format, FormatFromFlags(flags, model_dir));
  QLORAD_ASSIGN_OR_RETURN(std::unique_ptr<tokenizer::Tokenizer> tok, tokenizer::Tokenizer::Load(model_dir));
  QLORAD_ASSIGN_OR_RETURN(auto store, data::DatasetStore::Open(root));
  QLORAD_ASSIGN_OR_RETURN(auto holdout, eval::EvaluationAccess::OpenHoldout(*store, dataset));
  QLORAD_ASSIGN_OR_RETURN(std::vector<PreferencePair> pairs,
                          ReadPreferencePairs(*holdout, absl::StrCat("dataset '", dataset, "' holdout"), format, *tok));
  QLORAD_ASSIGN_OR_RETURN(ToolModel model, LoadModelFromFlags(flags, "cpu"));
  QLORAD_ASSIGN_OR_RETURN(PreferenceScores scores,
                          ScorePreferences(model.loaded.model, *model.lora_modules, pairs, batch_size, max_seq_len));
  QLORAD_ASSIGN_OR_RETURN(nlohmann::ordered_json report, Report(scores, beta, static_cast<int>(resamples)));
  if (flags.Has("dump-pairs")) QLORAD_RETURN_IF_ERROR(WriteFileAtomically(flags.GetOr("dump-pairs", ""), PairLines(pairs, scores)));
  report["dataset"] = dataset;
  report["adapter"] = flags.GetOr("adapter", "");
  const std::string text = report.dump(2) + "\n";
  if (flags.Has("out")) QLORAD_RETURN_IF_ERROR(WriteFileAtomically(flags.GetOr("out", ""), text));
  std::fputs(text.c_str(), stdout);
  return absl::OkStatus();
}

}  // namespace

int RunDpoEval(const Args& args) { return ReportStatus("dpo-eval", DpoEval(args)); }

}  // namespace qlorad::tool

#include "core/train/training_run.h"

#include <sys/resource.h>

#include <algorithm>

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/ops/zeros.h>
#include <torch/version.h>

#include "absl/synchronization/mutex.h"
#include "core/data/dataset_store.h"
#include "core/model/device.h"
#include "core/quant/nf4_model.h"
#include "core/tokenizer/prompt_format.h"
#include "core/tokenizer/tokenizer.h"
#include "core/train/dpo_trainer.h"
#include "core/train/examples.h"
#include "core/train/fitted_base.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"
#include "core/util/time_util.h"
#include "core/util/version.h"

namespace qlorad {
namespace {

absl::StatusOr<LoadOptions> TrainingLoadOptions(const TrainingRunSpec& spec, std::shared_ptr<LoraModules>& modules,
                                                std::shared_ptr<InitErrorTally>& tally) {
  LoadOptions options;
  QLORAD_ASSIGN_OR_RETURN(options.device, ParseDevice(spec.device));
  QLORAD_ASSIGN_OR_RETURN(options.linear_factory, MakeBaseLinearFactory(spec.options.quantize, spec.model_dir));
  modules = std::make_shared<LoraModules>();
  tally = std::make_shared<InitErrorTally>();
  options.linear_factory = MakeLoraLinearFactory(spec.options.lora, options.linear_factory, modules, tally);
  return options;
}

// Each rank's tokens/s, gathered on every rank (one all-reduce of a world-sized vector).
absl::StatusOr<nlohmann::ordered_json> DistributedRecord(Collective& group, const TrainingSummary& summary) {
  at::Tensor rates = at::zeros({group.world_size()}, at::TensorOptions().dtype(at::kDouble));
  rates[group.rank()] = summary.rank_tokens / std::max(summary.wall_seconds, 1e-9);
  QLORAD_RETURN_IF_ERROR(group.AllReduceSum(rates, "the per-rank throughput"));
  std::vector<double> per_rank(rates.data_ptr<double>(), rates.data_ptr<double>() + group.world_size());
  const int64_t fresh_steps = std::max<int64_t>(summary.steps - summary.resumed_from_step, 1);
  nlohmann::ordered_json record;
  record["world_size"] = group.world_size();
  record["backend"] = std::string(group.backend());
  record["per_rank_tokens_per_second"] = per_rank;
  record["allreduce_seconds_per_step"] = summary.allreduce_seconds / fresh_steps;
  record["allreduce_bytes_per_step"] = summary.allreduce_bytes / fresh_steps;
  return record;
}

nlohmann::ordered_json RunRecord(const TrainingRunSpec& spec, const LoadedModel& model, const nlohmann::json& manifest,
                                 const TrainingSummary& summary, const std::string& started,
                                 tokenizer::PromptFormat format, size_t examples) {
  struct rusage usage {};
  ::getrusage(RUSAGE_SELF, &usage);
  const nlohmann::json& files = manifest["files"];
  nlohmann::ordered_json record;
  record["started_utc"] = started;
  record["finished_utc"] = NowUtcRfc3339();
  record["base_model"] = {{"path", spec.model_dir}, {"fingerprint", model.fingerprint},
                          {"architecture", model.config.architecture}, {"quantization", spec.options.quantize}};
  if (spec.options.quantize != "none") {  // the block layout TrainingLoadOptions quantizes with (merge reads it back)
    record["base_model"]["quant_blocksize"] = QuantOptions().blocksize;
    record["base_model"]["double_quant"] = QuantOptions().double_quant;
  }
  record["dataset"] = {{"id", spec.options.dataset_id},
                       {"source_sha256", manifest["source"].value("sha256", "")},
                       {"train_sha256", files["train"].value("sha256", "")},
                       {"holdout_sha256", files.contains("holdout") ? files["holdout"].value("sha256", "") : ""},
                       {"train_examples", examples}};
  record["prompt_format"] = std::string(tokenizer::PromptFormatName(format));
  record["method"] = spec.options.method;
  record["lora"] = LoraConfigToJson(spec.options.lora);
  record["hyperparameters"] = TrainerOptionsToJson(spec.options.trainer);
  record["hyperparameters"]["optimizer"] = "adamw(0.9, 0.999, eps 1e-8)";
  record["seed"] = spec.options.trainer.seed;
  record["threads"] = at::get_num_threads();
  record["versions"] = {{"qlorad", QloradVersion()}, {"libtorch", TORCH_VERSION}};
  record["device"] = model.model->device().str();
  record["steps"] = summary.steps;
  record["resumed_from_step"] = summary.resumed_from_step;
  record["final_loss"] = summary.step_losses.empty() ? 0.0 : summary.step_losses.back();
  record["epoch_losses"] = summary.epoch_losses;
  record["step_losses"] = summary.step_losses;
  record["eval_losses"] = summary.eval_losses;
  record["eval_steps"] = summary.eval_steps;
  record["early_stopped"] = summary.early_stopped;
  record["train_examples_used"] = summary.train_examples;
  record["validation_examples"] = summary.validation_examples;
  record["tokens_seen"] = summary.tokens_seen;
  record["peak_rss_bytes"] = static_cast<int64_t>(usage.ru_maxrss) * 1024;
  record["wall_seconds"] = summary.wall_seconds;
  return record;
}

nlohmann::ordered_json MetricsJson(const DpoMetrics& m) {
  return {{"pairs", m.pairs}, {"loss", m.loss}, {"chosen_reward", m.chosen_reward},
          {"rejected_reward", m.rejected_reward}, {"margin", m.margin}, {"accuracy", m.accuracy}};
}

// training_run.json's "dpo" object: beta, the reference model, the last step's metrics,
// the validation slice's before training and at each evaluation, and per-step curves.
nlohmann::ordered_json DpoRecord(const TrainerOptions& options, const TrainingSummary& summary) {
  nlohmann::ordered_json record;
  record["beta"] = options.dpo_beta;
  record["reference"] = "the base model with the adapter disabled; log-probs computed once before step 1";
  record["loss"] = "sigmoid: -log sigmoid(beta * ((policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)))";
  if (!summary.dpo_steps.empty()) record["last_step"] = MetricsJson(summary.dpo_steps.back());
  if (summary.validation_examples > 0) {
    record["validation_start"] = MetricsJson(summary.dpo_eval_start);
    nlohmann::ordered_json evals = nlohmann::ordered_json::array();
    for (size_t i = 0; i < summary.dpo_evals.size(); ++i) {
      evals.push_back(MetricsJson(summary.dpo_evals[i]));
      evals.back()["step"] = summary.eval_steps[i];
    }
    record["validation"] = std::move(evals);
  }
  std::vector<double> accuracies, margins;
  for (const DpoMetrics& m : summary.dpo_steps) accuracies.push_back(m.accuracy), margins.push_back(m.margin);
  record["step_reward_accuracies"] = accuracies;
  record["step_reward_margins"] = margins;
  return record;
}

}  // namespace

absl::StatusOr<TrainingRunResult> RunTraining(const TrainingRunSpec& spec, const TrainingCallback& on_step,
                                              Collective* group) {
  const std::string started = NowUtcRfc3339();
  QLORAD_RETURN_IF_ERROR(spec.options.Validate());
  QLORAD_ASSIGN_OR_RETURN(std::unique_ptr<tokenizer::Tokenizer> tok, tokenizer::Tokenizer::Load(spec.model_dir));
  tokenizer::PromptFormat format;
  if (!spec.prompt_format.empty()) {
    QLORAD_ASSIGN_OR_RETURN(format, tokenizer::PromptFormatFromName(spec.prompt_format));
  } else {
    QLORAD_ASSIGN_OR_RETURN(format, tokenizer::DetectPromptFormat(*tok));
  }
  QLORAD_ASSIGN_OR_RETURN(auto store, data::DatasetStore::Open(spec.dataset_root));
  QLORAD_ASSIGN_OR_RETURN(nlohmann::json manifest, store->GetManifest(spec.options.dataset_id));
  const bool dpo = spec.options.method == "dpo";
  std::vector<TrainingExample> examples;
  std::vector<PreferencePair> pairs;
  if (dpo) {
    QLORAD_ASSIGN_OR_RETURN(pairs, LoadPreferencePairs(*store, spec.options.dataset_id, format, *tok));
  } else {
    QLORAD_ASSIGN_OR_RETURN(examples, LoadTrainingExamples(*store, spec.options.dataset_id, format, *tok));
  }
  const size_t train_items = dpo ? pairs.size() : examples.size();
  std::shared_ptr<LoraModules> modules;
  std::shared_ptr<InitErrorTally> tally;
  QLORAD_ASSIGN_OR_RETURN(LoadOptions load, TrainingLoadOptions(spec, modules, tally));
  absl::StatusOr<LoadedModel> loaded;
  {
    // lora_A's kaiming init draws from the process-wide generator: one seeded load at a
    // time, so concurrent jobs in a daemon each get their seed's adapter.
    static absl::Mutex seeded_load;
    absl::MutexLock lock(&seeded_load);
    at::manual_seed(spec.options.trainer.seed);
    loaded = LoadModel(spec.model_dir, load);
  }
  QLORAD_ASSIGN_OR_RETURN(LoadedModel model, std::move(loaded));
  TrainingRunResult result;
  result.base_fingerprint = model.fingerprint;
  result.examples = static_cast<int64_t>(train_items);
  if (dpo) {
    QLORAD_ASSIGN_OR_RETURN(result.summary, TrainDpo(model.model, *modules, pairs, spec.options.trainer, on_step,
                                                     spec.checkpoints, group));
  } else {
    QLORAD_ASSIGN_OR_RETURN(result.summary, TrainLora(model.model, *modules, examples, spec.options.trainer, on_step,
                                                      spec.checkpoints, group));
  }
  if (result.summary.cancelled) return result;
  std::unique_ptr<Collective> single;
  if (group == nullptr) group = (single = MakeSingleProcessCollective()).get();
  QLORAD_ASSIGN_OR_RETURN(nlohmann::ordered_json distributed, DistributedRecord(*group, result.summary));
  result.record = RunRecord(spec, model, manifest, result.summary, started, format, train_items);
  if (dpo) result.record["dpo"] = DpoRecord(spec.options.trainer, result.summary);
  result.record["distributed"] = std::move(distributed);
  if (group->rank() != 0) return result;
  std::string adapter_base = spec.model_dir;
  if (HasFittedBase(spec.options.lora)) {
    QLORAD_ASSIGN_OR_RETURN(FittedBase fitted, WriteFittedBase(spec.model_dir, spec.output_dir, spec.options.lora, *modules, *tally));
    adapter_base = fitted.path;
    result.base_fingerprint = fitted.fingerprint;
    result.record["base_model"]["initialized"] = std::move(fitted.record);
  }
  std::map<std::string, std::string> metadata = spec.adapter_metadata;
  metadata["qlorad_base_fingerprint"] = result.base_fingerprint;
  metadata["qlorad_dataset"] = spec.options.dataset_id;
  // The 4-bit type the adapter was trained against (a pre-quantized base counts): merge reads it.
  metadata["qlorad_base_quantization"] = spec.options.quantize != "none" ? spec.options.quantize : DeclaredQuantization(spec.model_dir);
  QLORAD_RETURN_IF_ERROR(SavePeftAdapter(spec.output_dir, spec.options.lora, *modules, adapter_base, metadata));
  QLORAD_RETURN_IF_ERROR(WriteFileAtomically(spec.output_dir + "/training_run.json", result.record.dump(2) + "\n"));
  return result;
}

}  // namespace qlorad

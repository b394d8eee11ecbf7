#include "core/train/training_run.h"

#include <sys/resource.h>

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <torch/version.h>

#include "core/data/dataset_store.h"
#include "core/model/device.h"
#include "core/quant/nf4_model.h"
#include "core/tokenizer/prompt_format.h"
#include "core/tokenizer/tokenizer.h"
#include "core/train/examples.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"
#include "core/util/time_util.h"
#include "core/util/version.h"

namespace qlorad {
namespace {

absl::StatusOr<LoadOptions> TrainingLoadOptions(const TrainingRunSpec& spec, std::shared_ptr<LoraModules>& modules) {
  LoadOptions options;
  QLORAD_ASSIGN_OR_RETURN(options.device, ParseDevice(spec.device));
  QLORAD_ASSIGN_OR_RETURN(options.linear_factory, MakeBaseLinearFactory(spec.options.quantize, spec.model_dir));
  modules = std::make_shared<LoraModules>();
  options.linear_factory = MakeLoraLinearFactory(spec.options.lora, options.linear_factory, modules);
  return options;
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

}  // namespace

absl::StatusOr<TrainingRunResult> RunTraining(const TrainingRunSpec& spec, const TrainingCallback& on_step) {
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
  QLORAD_ASSIGN_OR_RETURN(std::vector<TrainingExample> examples, LoadTrainingExamples(*store, spec.options.dataset_id, format, *tok));
  std::shared_ptr<LoraModules> modules;
  QLORAD_ASSIGN_OR_RETURN(LoadOptions load, TrainingLoadOptions(spec, modules));
  at::manual_seed(spec.options.trainer.seed);  // lora_A's kaiming init draws from the global generator
  QLORAD_ASSIGN_OR_RETURN(LoadedModel model, LoadModel(spec.model_dir, load));
  TrainingRunResult result;
  result.base_fingerprint = model.fingerprint;
  result.examples = static_cast<int64_t>(examples.size());
  QLORAD_ASSIGN_OR_RETURN(result.summary, TrainLora(model.model, *modules, examples, spec.options.trainer, on_step, spec.checkpoints));
  if (result.summary.cancelled) return result;
  std::map<std::string, std::string> metadata = spec.adapter_metadata;
  metadata["qlorad_base_fingerprint"] = model.fingerprint;
  metadata["qlorad_dataset"] = spec.options.dataset_id;
  // The 4-bit type the adapter was trained against (a pre-quantized base counts): merge reads it.
  metadata["qlorad_base_quantization"] = spec.options.quantize != "none" ? spec.options.quantize : DeclaredQuantization(spec.model_dir);
  QLORAD_RETURN_IF_ERROR(SavePeftAdapter(spec.output_dir, spec.options.lora, *modules, spec.model_dir, metadata));
  result.record = RunRecord(spec, model, manifest, result.summary, started, format, examples.size());
  QLORAD_RETURN_IF_ERROR(WriteFileAtomically(spec.output_dir + "/training_run.json", result.record.dump(2) + "\n"));
  return result;
}

}  // namespace qlorad

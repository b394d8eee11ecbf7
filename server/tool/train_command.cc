// qlorad-tool train: trains a LoRA/QLoRA adapter on a stored dataset's train
// split and writes a PEFT adapter directory plus training_run.json.
#include <sys/resource.h>

#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>
#include <ATen/Context.h>
#include <torch/version.h>

#include <cstdio>
#include <ctime>

#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/data/dataset_store.h"
#include "core/tokenizer/prompt_format.h"
#include "core/tokenizer/tokenizer.h"
#include "core/train/examples.h"
#include "core/train/trainer.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"
#include "nlohmann/json.hpp"
#include "server/tool/commands.h"
#include "server/tool/model_flags.h"

namespace qlorad::tool {
namespace {

constexpr char kUsage[] =
    "usage: qlorad-tool train --dataset-root DIR --dataset ID --out ADAPTER_DIR <model flags>\n"
    "       [--prompt-format alpaca|chatml|llama3|mistral|plain] [--r 16] [--alpha 32] [--dropout 0.05]\n"
    "       [--targets q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj] [--rslora]\n"
    "       [--epochs 3] [--batch-size 4] [--grad-accum 1] [--lr 2e-4] [--weight-decay 0] [--schedule cosine]\n"
    "       [--warmup-ratio 0.03] [--max-grad-norm 0.3] [--max-seq-len 512] [--seed 0] [--quiet]\n"
    "  QLoRA: --quantize nf4 (the base is frozen in 4 bits; adapters train in fp32)\n";

absl::StatusOr<LoraConfig> LoraFromFlags(const Flags& flags) {
  LoraConfig config;
  QLORAD_ASSIGN_OR_RETURN(config.r, flags.GetInt("r", 16));
  QLORAD_ASSIGN_OR_RETURN(config.alpha, flags.GetDouble("alpha", 2.0 * config.r));
  QLORAD_ASSIGN_OR_RETURN(config.dropout, flags.GetDouble("dropout", 0.05));
  config.use_rslora = flags.GetBool("rslora");
  if (flags.Has("targets")) config.target_modules = absl::StrSplit(flags.GetOr("targets", ""), ',', absl::SkipEmpty());
  QLORAD_RETURN_IF_ERROR(config.Validate());
  return config;
}

absl::StatusOr<TrainerOptions> TrainerFromFlags(const Flags& flags) {
  TrainerOptions o;
  QLORAD_ASSIGN_OR_RETURN(o.epochs, flags.GetInt("epochs", 3));
  QLORAD_ASSIGN_OR_RETURN(o.batch_size, flags.GetInt("batch-size", 4));
  QLORAD_ASSIGN_OR_RETURN(o.gradient_accumulation, flags.GetInt("grad-accum", 1));
  QLORAD_ASSIGN_OR_RETURN(o.learning_rate, flags.GetDouble("lr", 2e-4));
  QLORAD_ASSIGN_OR_RETURN(o.weight_decay, flags.GetDouble("weight-decay", 0.0));
  o.schedule = flags.GetOr("schedule", "cosine");
  QLORAD_ASSIGN_OR_RETURN(o.warmup_ratio, flags.GetDouble("warmup-ratio", 0.03));
  QLORAD_ASSIGN_OR_RETURN(o.max_grad_norm, flags.GetDouble("max-grad-norm", 0.3));
  QLORAD_ASSIGN_OR_RETURN(o.max_seq_len, flags.GetInt("max-seq-len", 512));
  QLORAD_ASSIGN_OR_RETURN(long long seed, flags.GetInt("seed", 0));
  o.seed = static_cast<uint64_t>(seed);
  QLORAD_RETURN_IF_ERROR(ValidateTrainerOptions(o));
  return o;
}

std::string UtcNow() { return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now(), absl::UTCTimeZone()); }

nlohmann::ordered_json RunRecord(const Flags& flags, const ToolModel& model, const nlohmann::json& manifest,
                                 const LoraConfig& lora, const TrainerOptions& o, const TrainingSummary& summary,
                                 const std::string& started, tokenizer::PromptFormat format, size_t examples) {
  struct rusage usage {};
  ::getrusage(RUSAGE_SELF, &usage);
  nlohmann::ordered_json record;
  record["started_utc"] = started;
  record["finished_utc"] = UtcNow();
  record["base_model"] = {{"path", flags.GetOr("model", "")}, {"fingerprint", model.loaded.fingerprint},
                          {"architecture", model.loaded.config.architecture},
                          {"quantization", model.quantized ? flags.GetOr("quantize", "nf4") : "none"}};
  record["dataset"] = {{"id", flags.GetOr("dataset", "")},
                       {"source_sha256", manifest["source"].value("sha256", "")},
                       {"train_sha256", manifest["files"]["train"].value("sha256", "")},
                       {"holdout_sha256", manifest["files"].contains("holdout") ? manifest["files"]["holdout"].value("sha256", "") : ""},
                       {"train_examples", examples}};
  record["prompt_format"] = std::string(tokenizer::PromptFormatName(format));
  record["lora"] = {{"r", lora.r}, {"alpha", lora.alpha}, {"dropout", lora.dropout}, {"use_rslora", lora.use_rslora},
                    {"target_modules", lora.target_modules}};
  record["hyperparameters"] = {{"epochs", o.epochs}, {"batch_size", o.batch_size},
                               {"gradient_accumulation", o.gradient_accumulation}, {"learning_rate", o.learning_rate},
                               {"weight_decay", o.weight_decay}, {"schedule", o.schedule}, {"warmup_ratio", o.warmup_ratio},
                               {"max_grad_norm", o.max_grad_norm}, {"max_seq_len", o.max_seq_len},
                               {"optimizer", "adamw(0.9, 0.999, eps 1e-8)"}};
  record["seed"] = o.seed;
  record["threads"] = at::get_num_threads();
  record["versions"] = {{"qlorad", "0.1.0"}, {"libtorch", TORCH_VERSION}};
  record["device"] = model.loaded.model->device().str();
  record["steps"] = summary.steps;
  record["final_loss"] = summary.step_losses.empty() ? 0.0 : summary.step_losses.back();
  record["epoch_losses"] = summary.epoch_losses;
  record["step_losses"] = summary.step_losses;
  record["tokens_seen"] = summary.tokens_seen;
  record["peak_rss_bytes"] = static_cast<int64_t>(usage.ru_maxrss) * 1024;
  record["wall_seconds"] = summary.wall_seconds;
  record["cancelled"] = summary.cancelled;
  return record;
}

absl::Status Train(const Args& args) {
  std::set<std::string> value_flags = kModelValueFlags, bool_flags = kModelBoolFlags;
  value_flags.insert({"dataset-root", "dataset", "out", "prompt-format", "r", "alpha", "dropout", "targets", "epochs",
                      "batch-size", "grad-accum", "lr", "weight-decay", "schedule", "warmup-ratio", "max-grad-norm",
                      "max-seq-len", "seed"});
  bool_flags.insert({"rslora", "quiet", "help"});
  QLORAD_ASSIGN_OR_RETURN(Flags flags, Flags::Parse(args, value_flags, bool_flags));
  if (flags.GetBool("help")) {
    std::printf("%s%s", kUsage, kModelUsage);
    return absl::OkStatus();
  }
  const std::string started = UtcNow();
  QLORAD_ASSIGN_OR_RETURN(std::string out, flags.GetRequired("out"));
  QLORAD_ASSIGN_OR_RETURN(std::string root, flags.GetRequired("dataset-root"));
  QLORAD_ASSIGN_OR_RETURN(std::string dataset, flags.GetRequired("dataset"));
  QLORAD_ASSIGN_OR_RETURN(LoraConfig lora, LoraFromFlags(flags));
  QLORAD_ASSIGN_OR_RETURN(TrainerOptions options, TrainerFromFlags(flags));
  QLORAD_ASSIGN_OR_RETURN(std::unique_ptr<tokenizer::Tokenizer> tok, tokenizer::Tokenizer::Load(flags.GetOr("model", "")));
  tokenizer::PromptFormat format;
  if (flags.Has("prompt-format")) {
    QLORAD_ASSIGN_OR_RETURN(format, tokenizer::PromptFormatFromName(flags.GetOr("prompt-format", "")));
  } else {
    QLORAD_ASSIGN_OR_RETURN(format, tokenizer::DetectPromptFormat(*tok));
  }
  QLORAD_ASSIGN_OR_RETURN(auto store, data::DatasetStore::Open(root));
  QLORAD_ASSIGN_OR_RETURN(nlohmann::json manifest, store->GetManifest(dataset));
  QLORAD_ASSIGN_OR_RETURN(std::vector<TrainingExample> examples, LoadTrainingExamples(*store, dataset, format, *tok));

  // Load the base with fresh adapters on the targeted modules.
  at::manual_seed(options.seed);  // lora_A's kaiming init draws from the global generator
  QLORAD_ASSIGN_OR_RETURN(ToolModel model, LoadModelForTraining(flags, lora));
  const bool quiet = flags.GetBool("quiet");
  QLORAD_ASSIGN_OR_RETURN(TrainingSummary summary,
                          TrainLora(model.loaded.model, *model.lora_modules, examples, options, [&](const TrainingEvent& e) {
                            if (!quiet)
                              std::printf("step %lld/%lld epoch %lld loss %.4f lr %.2e grad-norm %.3f %.0f tok/s eta %.0fs\n",
                                          static_cast<long long>(e.step), static_cast<long long>(e.total_steps),
                                          static_cast<long long>(e.epoch), e.loss, e.learning_rate, e.grad_norm,
                                          e.tokens_per_second, e.eta_seconds);
                            return true;
                          }));
  QLORAD_RETURN_IF_ERROR(SavePeftAdapter(out, lora, *model.lora_modules, flags.GetOr("model", ""),
                                         {{"qlorad_base_fingerprint", model.loaded.fingerprint},
                                          {"qlorad_dataset", dataset}}));
  auto record = RunRecord(flags, model, manifest, lora, options, summary, started, format, examples.size());
  QLORAD_RETURN_IF_ERROR(WriteFileAtomically(out + "/training_run.json", record.dump(2) + "\n"));
  std::printf("trained %lld steps on %zu examples in %.1f s; loss %.4f -> %.4f; adapter written to %s\n",
              static_cast<long long>(summary.steps), examples.size(), summary.wall_seconds,
              summary.step_losses.empty() ? 0.0 : summary.step_losses.front(),
              summary.step_losses.empty() ? 0.0 : summary.step_losses.back(), out.c_str());
  return absl::OkStatus();
}

}  // namespace

int RunTrain(const Args& args) { return ReportStatus("train", Train(args)); }

}  // namespace qlorad::tool

// qlorad-tool train: trains a LoRA/QLoRA adapter on a stored dataset's train
// split and writes a PEFT adapter directory plus training_run.json.

#include <cstdio>

#include <ATen/Context.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/match.h"
#include "absl/time/time.h"
#include "core/train/gloo_collective.h"
#include "core/train/training_run.h"
#include "core/util/status_macros.h"
#include "server/tool/commands.h"
#include "server/tool/model_flags.h"
#include "server/tool/rank_launcher.h"

namespace qlorad::tool {
namespace {

constexpr char kUsage[] =
    "usage: qlorad-tool train --dataset-root DIR --dataset ID --out ADAPTER_DIR <model flags>\n"
    "       [--prompt-format alpaca|chatml|llama3|mistral|plain] [--r 16] [--alpha 32] [--dropout 0.05]\n"
    "       [--targets q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj] [--rslora] [--dora]\n"
    "       [--epochs 3] [--batch-size 4] [--grad-accum 1] [--lr 2e-4] [--weight-decay 0] [--schedule cosine]\n"
    "       [--loraplus-lr-ratio 1]  (LoRA+: lora_B learns at ratio x lr; ~16 in the paper)\n"
    "       [--method sft|dpo [--dpo-beta 0.1]]  (dpo: preference pairs {prompt, chosen, rejected}; the reference\n"
    "        model is the base with the adapter disabled; one process)\n"
    "       [--lora-init kaiming|gaussian|loftq|pissa [--loftq-iterations 1]]  (loftq: 4-bit bases; loftq and\n"
    "        pissa fit the adapter to W and write the base it belongs to into ADAPTER_DIR/base_model)\n"
    "       [--warmup-ratio 0.03] [--max-grad-norm 0.3] [--max-seq-len 512] [--seed 0] [--quiet]\n"
    "       [--checkpoint-dir DIR [--checkpoint-every N]]  (an existing checkpoint of the same run is resumed)\n"
    "       [--gradient-checkpointing]  (recompute each decoder layer in backward: less activation memory)\n"
    "       [--checkpoint-keep none|attention|all]  (base outputs kept for the recompute: faster, more memory)\n"
    "       [--packing]  (a batch is batch-size rows of max-seq-len tokens, several whole examples per row)\n"
    "       [--eval-fraction 0.05 [--eval-every N] [--patience P] [--min-delta D]]  (validation slice of the train\n"
    "        split, evaluated every N steps or each epoch; early stopping after P evaluations without improvement)\n"
    "  QLoRA: --quantize nf4 (the base is frozen in 4 bits; adapters train in fp32)\n"
    "  Data parallel: --world-size N starts N local ranks (Gloo; on CUDA one device each); with MASTER_ADDR,\n"
    "    MASTER_PORT, RANK and WORLD_SIZE set (torchrun, a Kubernetes Indexed Job) this process is that rank.\n"
    "    --batch-size is the global batch. --collective-timeout SECONDS (300): a rank that does not answer\n"
    "    within it fails the step on every rank. --checkpoint-dir and --out must be shared by all ranks.\n";

// The flags for every rank: `args` without --world-size (both spellings).
std::vector<std::string> WithoutWorldSize(const Args& args) {
  std::vector<std::string> out = {"train"};
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--world-size") {
      ++i;
    } else if (!absl::StartsWith(args[i], "--world-size=")) {
      out.push_back(args[i]);
    }
  }
  return out;
}

// Flags not given keep LoraConfig's defaults (alpha: DefaultLoraAlpha(r)); RunTraining validates.
absl::StatusOr<LoraConfig> LoraFromFlags(const Flags& flags) {
  LoraConfig config;
  QLORAD_ASSIGN_OR_RETURN(config.r, flags.GetInt("r", config.r));
  QLORAD_ASSIGN_OR_RETURN(config.alpha, flags.GetDouble("alpha", DefaultLoraAlpha(config.r)));
  QLORAD_ASSIGN_OR_RETURN(config.dropout, flags.GetDouble("dropout", config.dropout));
  config.use_rslora = flags.GetBool("rslora");
  config.use_dora = flags.GetBool("dora");
  config.init = flags.GetOr("lora-init", config.init);
  QLORAD_ASSIGN_OR_RETURN(config.loftq_iterations, flags.GetInt("loftq-iterations", config.loftq_iterations));
  if (flags.Has("targets")) config.target_modules = absl::StrSplit(flags.GetOr("targets", ""), ',', absl::SkipEmpty());
  return config;
}

// Flags not given keep TrainerOptions' defaults; RunTraining validates.
absl::StatusOr<TrainerOptions> TrainerFromFlags(const Flags& flags) {
  TrainerOptions o;
  QLORAD_ASSIGN_OR_RETURN(o.epochs, flags.GetInt("epochs", o.epochs));
  QLORAD_ASSIGN_OR_RETURN(o.batch_size, flags.GetInt("batch-size", o.batch_size));
  QLORAD_ASSIGN_OR_RETURN(o.gradient_accumulation, flags.GetInt("grad-accum", o.gradient_accumulation));
  QLORAD_ASSIGN_OR_RETURN(o.learning_rate, flags.GetDouble("lr", o.learning_rate));
  QLORAD_ASSIGN_OR_RETURN(o.weight_decay, flags.GetDouble("weight-decay", o.weight_decay));
  QLORAD_ASSIGN_OR_RETURN(o.loraplus_lr_ratio, flags.GetDouble("loraplus-lr-ratio", o.loraplus_lr_ratio));
  QLORAD_ASSIGN_OR_RETURN(o.dpo_beta, flags.GetDouble("dpo-beta", o.dpo_beta));
  o.schedule = flags.GetOr("schedule", o.schedule);
  QLORAD_ASSIGN_OR_RETURN(o.warmup_ratio, flags.GetDouble("warmup-ratio", o.warmup_ratio));
  QLORAD_ASSIGN_OR_RETURN(o.max_grad_norm, flags.GetDouble("max-grad-norm", o.max_grad_norm));
  QLORAD_ASSIGN_OR_RETURN(o.max_seq_len, flags.GetInt("max-seq-len", o.max_seq_len));
  QLORAD_ASSIGN_OR_RETURN(long long seed, flags.GetInt("seed", 0));
  o.seed = static_cast<uint64_t>(seed);
  o.gradient_checkpointing = flags.GetBool("gradient-checkpointing");
  o.checkpoint_keep = flags.GetOr("checkpoint-keep", o.checkpoint_keep);
  o.packing = flags.GetBool("packing");
  QLORAD_ASSIGN_OR_RETURN(o.eval_fraction, flags.GetDouble("eval-fraction", o.eval_fraction));
  QLORAD_ASSIGN_OR_RETURN(o.eval_every_steps, flags.GetInt("eval-every", o.eval_every_steps));
  QLORAD_ASSIGN_OR_RETURN(o.early_stopping_patience, flags.GetInt("patience", o.early_stopping_patience));
  QLORAD_ASSIGN_OR_RETURN(o.early_stopping_min_delta, flags.GetDouble("min-delta", o.early_stopping_min_delta));
  return o;
}

absl::Status Train(const Args& args) {
  std::set<std::string> value_flags = kModelValueFlags, bool_flags = kModelBoolFlags;
  value_flags.insert({"dataset-root", "dataset", "out", "prompt-format", "r", "alpha", "dropout", "targets", "lora-init", "loftq-iterations", "epochs",
                      "batch-size", "grad-accum", "lr", "weight-decay", "loraplus-lr-ratio", "schedule", "warmup-ratio", "max-grad-norm", "method", "dpo-beta",
                      "max-seq-len", "seed", "checkpoint-dir", "checkpoint-every", "eval-fraction", "eval-every",
                      "patience", "min-delta", "world-size", "collective-timeout", "checkpoint-keep"});
  bool_flags.insert({"rslora", "dora", "quiet", "help", "gradient-checkpointing", "packing"});
  QLORAD_ASSIGN_OR_RETURN(Flags flags, Flags::Parse(args, value_flags, bool_flags));
  if (flags.GetBool("help")) {
    std::printf("%s%s", kUsage, kModelUsage);
    return absl::OkStatus();
  }
  QLORAD_ASSIGN_OR_RETURN(long long world_size, flags.GetInt("world-size", 1));
  QLORAD_ASSIGN_OR_RETURN(auto rendezvous, RendezvousFromEnvironment());
  if (world_size < 1 || world_size > 1024) return absl::InvalidArgumentError("--world-size: expected 1..1024");
  if (world_size > 1 && !rendezvous.has_value()) return LaunchLocalRanks(WithoutWorldSize(args), static_cast<int>(world_size));
  QLORAD_ASSIGN_OR_RETURN(double timeout_seconds, flags.GetDouble("collective-timeout", 300.0));
  if (!(timeout_seconds > 0)) return absl::InvalidArgumentError("--collective-timeout: expected seconds > 0");
  std::unique_ptr<Collective> group;
  if (rendezvous.has_value()) {
    rendezvous->timeout = absl::Seconds(timeout_seconds);
    QLORAD_ASSIGN_OR_RETURN(group, JoinGlooGroup(*rendezvous));
  }
  TrainingRunSpec spec;
  QLORAD_ASSIGN_OR_RETURN(spec.output_dir, flags.GetRequired("out"));
  QLORAD_ASSIGN_OR_RETURN(spec.dataset_root, flags.GetRequired("dataset-root"));
  QLORAD_ASSIGN_OR_RETURN(spec.options.dataset_id, flags.GetRequired("dataset"));
  QLORAD_ASSIGN_OR_RETURN(spec.model_dir, flags.GetRequired("model"));
  QLORAD_ASSIGN_OR_RETURN(spec.options.lora, LoraFromFlags(flags));
  QLORAD_ASSIGN_OR_RETURN(spec.options.trainer, TrainerFromFlags(flags));
  spec.prompt_format = flags.GetOr("prompt-format", "");
  spec.device = flags.GetOr("device", "auto");
  if (group && group->world_size() > 1 && (spec.device == "cuda" || (spec.device == "auto" && at::hasCUDA())))
    spec.device = "cuda:" + std::to_string(rendezvous->local_rank);  // one device per local rank
  spec.options.quantize = flags.GetOr("quantize", "none");
  spec.options.method = flags.GetOr("method", "sft");
  spec.checkpoints.dir = flags.GetOr("checkpoint-dir", "");
  QLORAD_ASSIGN_OR_RETURN(spec.checkpoints.every_steps, flags.GetInt("checkpoint-every", 0));
  const bool quiet = flags.GetBool("quiet") || (group && group->rank() != 0);
  QLORAD_ASSIGN_OR_RETURN(TrainingRunResult run, RunTraining(spec, [&](const TrainingEvent& e) {
    if (!quiet)
      std::printf("step %lld/%lld epoch %lld loss %.4f lr %.2e grad-norm %.3f %.0f tok/s eta %.0fs%s%s\n",
                  static_cast<long long>(e.step), static_cast<long long>(e.total_steps), static_cast<long long>(e.epoch),
                  e.loss, e.learning_rate, e.grad_norm, e.tokens_per_second, e.eta_seconds,
                  e.checkpoint_path.empty() ? "" : " checkpoint ", e.checkpoint_path.c_str());
    if (!quiet && e.dpo)
      std::printf("  dpo reward-accuracy %.3f margin %.4f chosen %.4f rejected %.4f%s\n", e.dpo_step.accuracy,
                  e.dpo_step.margin, e.dpo_step.chosen_reward, e.dpo_step.rejected_reward,
                  e.eval_loss >= 0 ? absl::StrCat(" | validation accuracy ", e.dpo_eval.accuracy, " margin ", e.dpo_eval.margin).c_str() : "");
    std::fflush(stdout);  // progress is read live (pipes are block-buffered)
    return true;
  }, group.get()));
  const TrainingSummary& summary = run.summary;
  if (quiet && group && group->rank() != 0) return absl::OkStatus();
  std::printf("trained %lld steps on %lld examples in %.1f s; loss %.4f -> %.4f; adapter written to %s\n",
              static_cast<long long>(summary.steps), static_cast<long long>(run.examples), summary.wall_seconds,
              summary.step_losses.empty() ? 0.0 : summary.step_losses.front(),
              summary.step_losses.empty() ? 0.0 : summary.step_losses.back(), spec.output_dir.c_str());
  return absl::OkStatus();
}

}  // namespace

int RunTrain(const Args& args) { return ReportStatus("train", Train(args)); }

}  // namespace qlorad::tool

// qlorad-tool plan: predicted peak memory of a fine-tuning run (core/train/memory_planner.h).
#include <cstdio>

#include "absl/strings/str_split.h"
#include "core/model/config.h"
#include "core/train/memory_planner.h"
#include "core/util/status_macros.h"
#include "server/tool/commands.h"
#include "server/tool/flags.h"

namespace qlorad::tool {
namespace {

constexpr char kUsage[] =
    "usage: qlorad-tool plan (--preset 1B|3B|7B|8B|13B|70B | --model DIR) [--method qlora|lora|full]\n"
    "         [--r 16] [--targets q_proj,...] [--dora] [--dpo] [--batch 1] [--seq 512] [--no-gradient-checkpointing]\n"
    "         [--checkpoint-keep none|attention|all]\n"
    "         (--dpo: a batch of pairs, each a chosen and a rejected row)\n"
    "         [--optimizer adamw|adamw8bit|sgd] [--device cuda|cpu] [--loss-fraction 1.0]\n"
    "         [--tokens-per-second T --train-tokens N]\n";

absl::Status Plan(const Args& args) {
  QLORAD_ASSIGN_OR_RETURN(
      Flags flags, Flags::Parse(args,
                                {"preset", "model", "method", "r", "targets", "batch", "seq", "optimizer", "device",
                                 "loss-fraction", "tokens-per-second", "train-tokens", "checkpoint-keep"},
                                {"no-gradient-checkpointing", "dora", "dpo", "help"}));
  if (flags.GetBool("help")) {
    std::fputs(kUsage, stdout);
    return absl::OkStatus();
  }
  PlanInput in;
  if (flags.Has("model")) {
    QLORAD_ASSIGN_OR_RETURN(in.config, LoadModelConfig(flags.GetOr("model", "")));
  } else {
    QLORAD_ASSIGN_OR_RETURN(in.config, PresetModelConfig(flags.GetOr("preset", "7B")));
  }
  in.method = flags.GetOr("method", "qlora");
  QLORAD_ASSIGN_OR_RETURN(in.lora.r, flags.GetInt("r", 16));
  if (flags.Has("targets")) in.lora.target_modules = absl::StrSplit(flags.GetOr("targets", ""), ',', absl::SkipEmpty());
  in.lora.use_dora = flags.GetBool("dora");
  in.dpo = flags.GetBool("dpo");
  QLORAD_ASSIGN_OR_RETURN(in.batch, flags.GetInt("batch", 1));
  QLORAD_ASSIGN_OR_RETURN(in.seq_len, flags.GetInt("seq", 512));
  in.gradient_checkpointing = !flags.GetBool("no-gradient-checkpointing");
  in.checkpoint_keep = flags.GetOr("checkpoint-keep", in.checkpoint_keep);
  in.optimizer = flags.GetOr("optimizer", "adamw");
  in.device = flags.GetOr("device", "cuda");
  QLORAD_ASSIGN_OR_RETURN(in.loss_token_fraction, flags.GetDouble("loss-fraction", 1.0));
  QLORAD_ASSIGN_OR_RETURN(in.tokens_per_second, flags.GetDouble("tokens-per-second", 0.0));
  QLORAD_ASSIGN_OR_RETURN(in.train_tokens, flags.GetInt("train-tokens", 0));
  QLORAD_ASSIGN_OR_RETURN(MemoryPlan plan, PlanMemory(in));
  std::printf("%.2fB parameters\n%s", in.config.ParameterCount() / 1e9, FormatPlan(in, plan).c_str());
  return absl::OkStatus();
}

}  // namespace

int RunPlan(const Args& args) { return ReportStatus("plan", Plan(args)); }

}  // namespace qlorad::tool

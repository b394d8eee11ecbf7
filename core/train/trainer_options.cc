#include "core/train/trainer_options.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "core/util/checkpoint_base.h"

namespace qlorad {

absl::Status ValidateTrainerOptions(const TrainerOptions& o) {
  if (o.epochs <= 0) return absl::InvalidArgumentError("epochs: must be positive");
  if (o.batch_size <= 0) return absl::InvalidArgumentError("batch_size: must be positive");
  if (o.gradient_accumulation <= 0) return absl::InvalidArgumentError("gradient_accumulation: must be positive");
  if (!(o.learning_rate > 0)) return absl::InvalidArgumentError("learning_rate: must be positive (hint: 2e-4 is QLoRA's)");
  if (!(o.loraplus_lr_ratio > 0) || !std::isfinite(o.loraplus_lr_ratio))
    return absl::InvalidArgumentError("loraplus_lr_ratio: must be a positive number (hint: 1 = plain LoRA, 16 = LoRA+)");
  if (!(o.dpo_beta > 0) || !std::isfinite(o.dpo_beta))
    return absl::InvalidArgumentError("dpo_beta: must be a positive number (hint: 0.1; higher keeps the adapter closer to the base)");
  if (!(o.warmup_ratio >= 0 && o.warmup_ratio < 1)) return absl::InvalidArgumentError("warmup_ratio: must be in [0, 1)");
  if (absl::Status keep = CheckCheckpointKeep(o.checkpoint_keep); !keep.ok()) return keep;
  if (o.checkpoint_keep != "none" && !o.gradient_checkpointing)
    return absl::InvalidArgumentError(absl::StrCat("checkpoint_keep: '", o.checkpoint_keep,
                                                   "' applies to gradient checkpointing, which is off "
                                                   "(hint: turn gradient_checkpointing on, or leave checkpoint_keep none)"));
  if (o.schedule != "constant" && o.schedule != "linear" && o.schedule != "cosine")
    return absl::InvalidArgumentError(absl::StrCat("schedule: '", o.schedule, "' is not constant, linear or cosine"));
  if (o.max_seq_len < 2) return absl::InvalidArgumentError("max_seq_len: must be at least 2");
  if (!(o.eval_fraction >= 0 && o.eval_fraction <= 0.5))
    return absl::InvalidArgumentError("eval_fraction: must be in [0, 0.5] (hint: 0.05 holds out 5% of the train split)");
  if (o.eval_every_steps < 0 || o.early_stopping_patience < 0 || o.early_stopping_min_delta < 0)
    return absl::InvalidArgumentError("eval_every_steps, early_stopping_patience and early_stopping_min_delta: must be >= 0");
  if (o.early_stopping_patience > 0 && o.eval_fraction == 0)
    return absl::InvalidArgumentError("early_stopping_patience: needs eval_fraction > 0 (a validation slice)");
  return absl::OkStatus();
}

}  // namespace qlorad

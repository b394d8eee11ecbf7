// What a gradient-checkpointed layer's recompute does for a LoRA module's frozen base
// matmul (core/model/checkpointed_layer.h, core/util/base_output_tape.h), and which modules
// TrainerOptions::checkpoint_keep gives which. Torch-free (the memory planner and the
// option checks use it).
#ifndef QLORAD_CORE_UTIL_CHECKPOINT_BASE_H_
#define QLORAD_CORE_UTIL_CHECKPOINT_BASE_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace qlorad {

//   kRecompute  the recompute runs the matmul again (no extra memory);
//   kKeep       it uses the forward's output, kept from the layer's forward to its
//               backward (the output's memory; one base matmul less per step);
//   kSkip       it uses zeros: for a module whose output's value no backward reads, i.e.
//               the last projection of a block whose result only joins the residual
//               stream (down_proj). DoRA reads it (the magnitude's gradient), so a DoRA
//               module keeps it instead.
enum class CheckpointBase { kRecompute, kKeep, kSkip };

// OK for a checkpoint_keep setting (none, attention or all), else INVALID_ARGUMENT
// "checkpoint_keep: '<keep>' is not none, attention or all".
inline absl::Status CheckCheckpointKeep(const std::string& keep) {
  if (keep == "none" || keep == "attention" || keep == "all") return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("checkpoint_keep: '", keep, "' is not none, attention or all"));
}

// checkpoint_keep ("none" | "attention" | "all") for a module named by its path
// ("model.layers.3.self_attn.q_proj"; the last component decides): none recomputes all;
// attention keeps q/k/v/o_proj and skips down_proj; all keeps gate/up_proj too. Modules
// outside a decoder layer's seven projections, and unknown settings, get kRecompute.
inline CheckpointBase CheckpointBaseFor(const std::string& keep, const std::string& module) {
  if (keep != "attention" && keep != "all") return CheckpointBase::kRecompute;
  const std::string projection = module.substr(module.rfind('.') + 1);
  if (projection == "down_proj") return CheckpointBase::kSkip;
  if (projection == "q_proj" || projection == "k_proj" || projection == "v_proj" || projection == "o_proj")
    return CheckpointBase::kKeep;
  if (projection == "gate_proj" || projection == "up_proj")
    return keep == "all" ? CheckpointBase::kKeep : CheckpointBase::kRecompute;
  return CheckpointBase::kRecompute;
}

// Whether a module under `policy` keeps its base output from the forward: kKeep, and kSkip
// for a DoRA module (whose magnitude's gradient reads the output).
inline bool KeepsBaseOutput(CheckpointBase policy, bool dora) {
  return policy == CheckpointBase::kKeep || (policy == CheckpointBase::kSkip && dora);
}

}  // namespace qlorad

#endif  // QLORAD_CORE_UTIL_CHECKPOINT_BASE_H_

// The adapters' optimizer and its checkpointed state, shared by the SFT and DPO loops:
// AdamW(0.9, 0.999, eps 1e-8) over two parameter groups (LoRA+), the moments saved and
// restored, and the run identity a checkpoint must match. Internal to core/train.
#ifndef QLORAD_CORE_TRAIN_ADAPTER_OPTIMIZER_H_
#define QLORAD_CORE_TRAIN_ADAPTER_OPTIMIZER_H_

#include <string>
#include <string_view>
#include <vector>

#include <torch/optim/adamw.h>

#include "absl/status/status.h"
#include "core/train/trainer.h"
#include "core/train/trainer_options.h"
#include "core/train/training_checkpoint.h"

namespace qlorad {

// Group 0: lora_A tensors (and DoRA magnitudes, as PEFT's LoRA+ groups them) at the
// scheduled rate; group 1: lora_B tensors (odd indices below `pair_tensors`, LoraParameters'
// order) at loraplus_lr_ratio times it (one rate when the ratio is 1). Moments are keyed by
// tensor, so checkpoints do not depend on the grouping.
torch::optim::AdamW MakeAdapterOptimizer(const std::vector<at::Tensor>& params, size_t pair_tensors,
                                         const TrainerOptions& options);

// Sets the scheduled rate `lr` on group 0 and lr · loraplus_lr_ratio on group 1.
void SetLearningRate(torch::optim::AdamW& optimizer, double lr, const TrainerOptions& options);

// Each parameter's AdamW state (step 0 and undefined moments before its first step).
std::vector<AdamMoments> SaveMoments(torch::optim::AdamW& optimizer, const std::vector<at::Tensor>& params);

// Copies the checkpoint's tensors into `params` and its moments into `optimizer`.
// FAILED_PRECONDITION when the checkpoint belongs to another run (identity, count or shapes).
absl::Status RestoreCheckpoint(const TrainingCheckpoint& checkpoint, const std::string& identity,
                               std::vector<at::Tensor>& params, torch::optim::AdamW& optimizer);

// A digest of everything that fixes a run's trajectory: the options, the parameter
// sizes, every example's ids and `extra` (a loop's own settings, e.g. DPO's beta;
// empty for SFT, whose identities stay as they were). A checkpoint resumes only a run
// with the same identity.
std::string RunIdentity(const TrainerOptions& options, const std::vector<TrainingExample>& examples,
                        const std::vector<at::Tensor>& params, std::string_view extra = "");

}  // namespace qlorad

#endif  // QLORAD_CORE_TRAIN_ADAPTER_OPTIMIZER_H_

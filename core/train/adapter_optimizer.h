// The adapters' optimizer and its checkpointed state, shared by the SFT and DPO loops:
// AdamW(0.9, 0.999, eps 1e-8) over two parameter groups (LoRA+), the run identity a
// checkpoint must match, and the run's checkpoints (resume on every rank, write on rank 0).
// Internal to core/train.
#ifndef QLORAD_CORE_TRAIN_ADAPTER_OPTIMIZER_H_
#define QLORAD_CORE_TRAIN_ADAPTER_OPTIMIZER_H_

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <torch/optim/adamw.h>

#include "absl/status/status.h"
#include "core/train/collective.h"
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

// A digest of everything that fixes a run's trajectory: the options, the parameter
// sizes, every example's ids and `extra` (a loop's own settings, e.g. DPO's beta;
// empty for SFT, whose identities stay as they were). A checkpoint resumes only a run
// with the same identity.
std::string RunIdentity(const TrainerOptions& options, const std::vector<TrainingExample>& examples,
                        const std::vector<at::Tensor>& params, std::string_view extra = "");

// The checkpoints of one run (options.dir empty: none). Every rank resumes from the shared
// directory; rank 0 alone writes, after a barrier that every rank passes.
class RunCheckpoints {
 public:
  RunCheckpoints(const CheckpointOptions& options, std::string identity, Collective& group,
                 std::vector<at::Tensor>& params, torch::optim::AdamW& optimizer)
      : options_(options), identity_(std::move(identity)), group_(group), params_(params), optimizer_(optimizer) {}

  // The newest valid checkpoint's progress, its tensors and moments restored into the params
  // and the optimizer; nullopt when there is none. Skipped (invalid) checkpoints are appended
  // to `skipped`. FAILED_PRECONDITION when it belongs to another run.
  absl::StatusOr<std::optional<TrainerProgress>> Resume(std::vector<std::string>* skipped);
  // Whether a checkpoint is due after `step` of `total_steps`: every every_steps steps, at the
  // end and when training stops early.
  bool Due(int64_t step, int64_t total_steps, bool early_stopped) const;
  // Writes `progress` with the current params and moments; returns its path ("" on ranks
  // other than 0).
  absl::StatusOr<std::string> Save(const TrainerProgress& progress);
  // After a cancellation: Save unless this step's checkpoint was just written.
  absl::Status SaveUnlessSaved(const TrainerProgress& progress);
  // The newest checkpoint this process wrote ("" when none).
  const std::string& last_written() const { return last_written_; }

 private:
  const CheckpointOptions& options_;
  const std::string identity_;
  Collective& group_;
  std::vector<at::Tensor>& params_;
  torch::optim::AdamW& optimizer_;
  int64_t saved_step_ = -1;
  std::string last_written_;
};

}  // namespace qlorad

#endif  // QLORAD_CORE_TRAIN_ADAPTER_OPTIMIZER_H_

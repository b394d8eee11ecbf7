// Bookkeeping shared by the SFT and DPO loops: the step count of a plan, the loop
// position and loss accumulators after a step, and the clock of a (possibly resumed)
// run. Internal to core/train.
#ifndef QLORAD_CORE_TRAIN_TRAINING_PROGRESS_H_
#define QLORAD_CORE_TRAIN_TRAINING_PROGRESS_H_

#include <chrono>
#include <cstdint>
#include <vector>

#include "core/train/trainer.h"
#include "core/train/training_checkpoint.h"

namespace qlorad {

// Every epoch's global batches (each a list of example or pair indices).
using EpochPlans = std::vector<std::vector<std::vector<size_t>>>;

// Optimizer steps of `plans` with `accumulation` batches per step.
int64_t TotalSteps(const EpochPlans& plans, int64_t accumulation);

// Records a finished optimizer step that consumed batches up to `last` of an epoch plan
// of `plan_size` batches: step count, position, losses; at the epoch's end the epoch
// mean and the move to the next epoch.
void AdvanceProgress(TrainerProgress& progress, double step_loss, size_t last, size_t plan_size, int64_t epoch);

// The run's clock: elapsed time includes the time before a resume; throughput and ETA
// count only this process's steps.
class ProgressClock {
 public:
  explicit ProgressClock(const TrainerProgress& progress);
  double Elapsed() const;
  // Sets progress.elapsed_seconds and the event's step, total, elapsed, tokens/s and ETA.
  void Stamp(TrainerProgress& progress, int64_t total_steps, TrainingEvent& event) const;

 private:
  std::chrono::steady_clock::time_point start_;
  double elapsed_before_;
  int64_t steps_before_, tokens_before_;
};

}  // namespace qlorad

#endif  // QLORAD_CORE_TRAIN_TRAINING_PROGRESS_H_

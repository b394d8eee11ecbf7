#include "core/train/training_progress.h"

#include <algorithm>

namespace qlorad {

int64_t TotalSteps(const EpochPlans& plans, int64_t accumulation) {
  int64_t total = 0;
  for (const auto& plan : plans) total += (static_cast<int64_t>(plan.size()) + accumulation - 1) / accumulation;
  return total;
}

void AdvanceProgress(TrainerProgress& p, double step_loss, size_t last, size_t plan_size, int64_t epoch) {
  ++p.step;
  p.next_batch = static_cast<int64_t>(last);
  p.step_losses.push_back(step_loss);
  p.epoch_loss += step_loss;
  ++p.epoch_batches;
  if (last < plan_size) return;
  // Epoch finished: the next checkpoint starts the next one.
  p.epoch_losses.push_back(p.epoch_loss / std::max<int64_t>(p.epoch_batches, 1));
  p.epoch = epoch + 1;
  p.next_batch = 0;
  p.epoch_loss = 0;
  p.epoch_batches = 0;
}

ProgressClock::ProgressClock(const TrainerProgress& p)
    : start_(std::chrono::steady_clock::now()),
      elapsed_before_(p.elapsed_seconds),
      steps_before_(p.step),
      tokens_before_(p.tokens_seen) {}

double ProgressClock::Elapsed() const {
  return elapsed_before_ + std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void ProgressClock::Stamp(TrainerProgress& p, int64_t total_steps, TrainingEvent& event) const {
  p.elapsed_seconds = Elapsed();
  event.step = p.step;
  event.total_steps = total_steps;
  event.elapsed_seconds = p.elapsed_seconds;
  const double fresh_seconds = std::max(p.elapsed_seconds - elapsed_before_, 1e-9);
  event.tokens_per_second = (p.tokens_seen - tokens_before_) / fresh_seconds;
  event.eta_seconds = fresh_seconds / std::max<int64_t>(p.step - steps_before_, 1) * (total_steps - p.step);
}

}  // namespace qlorad

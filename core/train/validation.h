// The validation slice and early stopping of a training run. The slice is carved from
// the training examples (never from the hold-out, which only evaluation reads): a
// seeded selection of ceil(fraction · n) examples, at least one, leaving at least one
// to train on. Early stopping watches the validation losses in order.
#ifndef QLORAD_CORE_TRAIN_VALIDATION_H_
#define QLORAD_CORE_TRAIN_VALIDATION_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "core/train/trainer.h"

namespace qlorad {

struct TrainValidationSplit {
  std::vector<TrainingExample> train;
  std::vector<TrainingExample> validation;  // empty when fraction == 0
};

// Which of n items form the validation slice (true = validation): the seeded selection
// above. INVALID_ARGUMENT for a fraction outside [0, 0.5] or too few items to split.
absl::StatusOr<std::vector<bool>> ValidationMask(size_t n, double fraction, uint64_t seed);

// The examples split by ValidationMask(examples.size(), fraction, seed).
absl::StatusOr<TrainValidationSplit> SplitValidation(const std::vector<TrainingExample>& examples, double fraction,
                                                     uint64_t seed);

// True when the last `patience` losses all failed to improve on the best loss before
// them by more than min_delta (patience <= 0: never).
bool ShouldStopEarly(const std::vector<double>& eval_losses, int64_t patience, double min_delta);

}  // namespace qlorad

#endif  // QLORAD_CORE_TRAIN_VALIDATION_H_

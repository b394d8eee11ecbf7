#include "core/train/validation.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"

namespace qlorad {

absl::StatusOr<std::vector<bool>> ValidationMask(size_t n, double fraction, uint64_t seed) {
  if (!(fraction >= 0 && fraction <= 0.5))
    return absl::InvalidArgumentError(absl::StrCat("eval_fraction must be in [0, 0.5], got ", fraction));
  std::vector<bool> is_validation(n, false);
  if (fraction == 0) return is_validation;
  const size_t held = std::max<size_t>(1, static_cast<size_t>(std::ceil(fraction * static_cast<double>(n))));
  if (held >= n)
    return absl::InvalidArgumentError(absl::StrCat("eval_fraction ", fraction, " of ", n,
                                                   " examples leaves nothing to train on (hint: more data or eval_fraction 0)"));
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(seed ^ 0x9e3779b97f4a7c15ull);  // independent of the epoch shuffles
  std::shuffle(order.begin(), order.end(), rng);
  for (size_t i = 0; i < held; ++i) is_validation[order[i]] = true;
  return is_validation;
}

absl::StatusOr<TrainValidationSplit> SplitValidation(const std::vector<TrainingExample>& examples, double fraction,
                                                     uint64_t seed) {
  QLORAD_ASSIGN_OR_RETURN(const std::vector<bool> is_validation, ValidationMask(examples.size(), fraction, seed));
  TrainValidationSplit split;
  for (size_t i = 0; i < examples.size(); ++i) (is_validation[i] ? split.validation : split.train).push_back(examples[i]);
  return split;
}

bool ShouldStopEarly(const std::vector<double>& eval_losses, int64_t patience, double min_delta) {
  if (patience <= 0 || static_cast<int64_t>(eval_losses.size()) <= patience) return false;
  const size_t window_start = eval_losses.size() - static_cast<size_t>(patience);
  const double best_before = *std::min_element(eval_losses.begin(), eval_losses.begin() + window_start);
  for (size_t i = window_start; i < eval_losses.size(); ++i)
    if (eval_losses[i] < best_before - min_delta) return false;
  return true;
}

}  // namespace qlorad

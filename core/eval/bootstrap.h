// Percentile bootstrap confidence intervals (Efron's percentile method).
//
// Contract:
//  * B resamples of n example indices drawn uniformly with replacement from a seeded
//    SplitMix64 stream (platform-independent: the same seed gives the same interval
//    on every machine and standard library).
//  * Paired resampling: a difference (adapter − baseline) uses the SAME index sample
//    for both systems in each replicate, so per-example correlation is kept.
//  * The metric is recomputed on each resample (so non-additive metrics such as
//    macro-F1 work); the interval is the (α/2, 1−α/2) percentiles of the B replicate
//    values with numpy's default linear interpolation (index q·(B−1)).
//  * `point` is the metric on the full sample (not the mean of the replicates).
#ifndef QLORAD_CORE_EVAL_BOOTSTRAP_H_
#define QLORAD_CORE_EVAL_BOOTSTRAP_H_

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace qlorad::eval {

struct BootstrapOptions {
  int resamples = 1000;
  double confidence = 0.95;
  uint64_t seed = 0x5eed;
};

struct ConfidenceInterval {
  double point = 0;
  double lower = 0;
  double upper = 0;
  double confidence = 0.95;
  int resamples = 0;
  uint64_t seed = 0;
};

// A metric over a multiset of example indices (each index in [0, n)).
using IndexedMetric = std::function<double(const std::vector<size_t>& indices)>;

// The deterministic generator used for resampling (SplitMix64).
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t Next();
  // Uniform in [0, n) without modulo bias (rejection sampling). n > 0.
  uint64_t Uniform(uint64_t n);

 private:
  uint64_t state_;
};

// numpy.percentile(values, q*100) with linear interpolation; `values` need not be sorted.
double Percentile(std::vector<double> values, double q);

// Interval for metric(all n examples). INVALID_ARGUMENT for n == 0, resamples < 1 or
// confidence outside (0, 1).
absl::StatusOr<ConfidenceInterval> BootstrapInterval(size_t n, const IndexedMetric& metric,
                                                     const BootstrapOptions& options = {});

// Paired interval for treatment(idx) − control(idx).
absl::StatusOr<ConfidenceInterval> BootstrapDifference(size_t n, const IndexedMetric& treatment,
                                                       const IndexedMetric& control,
                                                       const BootstrapOptions& options = {});

// Convenience: the mean of per-example values (accuracy, exact match, ROUGE-L F, ...).
IndexedMetric MeanOf(const std::vector<double>& per_example);

nlohmann::json ConfidenceIntervalToJson(const ConfidenceInterval& ci);
ConfidenceInterval ConfidenceIntervalFromJson(const nlohmann::json& j);

}  // namespace qlorad::eval

#endif  // QLORAD_CORE_EVAL_BOOTSTRAP_H_

#include "core/eval/bootstrap.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace qlorad::eval {

uint64_t SplitMix64::Next() {
  uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t SplitMix64::Uniform(uint64_t n) {
  const uint64_t limit = std::numeric_limits<uint64_t>::max() - std::numeric_limits<uint64_t>::max() % n;
  uint64_t x;
  do {
    x = Next();
  } while (x >= limit);
  return x % n;
}

double Percentile(std::vector<double> values, double q) {
  if (values.empty()) return std::numeric_limits<double>::quiet_NaN();
  std::sort(values.begin(), values.end());
  const double pos = q * static_cast<double>(values.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, values.size() - 1);
  const double frac = pos - static_cast<double>(lo);
  return values[lo] + (values[hi] - values[lo]) * frac;
}

namespace {

absl::Status CheckOptions(size_t n, const BootstrapOptions& o) {
  if (n == 0) return absl::InvalidArgumentError("bootstrap: no examples");
  if (o.resamples < 1) return absl::InvalidArgumentError(absl::StrCat("bootstrap: resamples must be >= 1, got ", o.resamples));
  if (!(o.confidence > 0 && o.confidence < 1)) {
    return absl::InvalidArgumentError(absl::StrCat("bootstrap: confidence must be in (0, 1), got ", o.confidence));
  }
  return absl::OkStatus();
}

ConfidenceInterval Summarise(double point, std::vector<double> replicates, const BootstrapOptions& o) {
  ConfidenceInterval ci;
  const double alpha = 1 - o.confidence;
  ci.point = point;
  ci.lower = Percentile(replicates, alpha / 2);
  ci.upper = Percentile(std::move(replicates), 1 - alpha / 2);
  ci.confidence = o.confidence;
  ci.resamples = o.resamples;
  ci.seed = o.seed;
  return ci;
}

std::vector<size_t> AllIndices(size_t n) {
  std::vector<size_t> idx(n);
  for (size_t i = 0; i < n; ++i) idx[i] = i;
  return idx;
}

}  // namespace

absl::StatusOr<ConfidenceInterval> BootstrapInterval(size_t n, const IndexedMetric& metric,
                                                     const BootstrapOptions& options) {
  if (absl::Status s = CheckOptions(n, options); !s.ok()) return s;
  SplitMix64 rng(options.seed);
  std::vector<size_t> sample(n);
  std::vector<double> replicates;
  replicates.reserve(options.resamples);
  for (int b = 0; b < options.resamples; ++b) {
    for (size_t i = 0; i < n; ++i) sample[i] = rng.Uniform(n);
    replicates.push_back(metric(sample));
  }
  return Summarise(metric(AllIndices(n)), std::move(replicates), options);
}

absl::StatusOr<ConfidenceInterval> BootstrapDifference(size_t n, const IndexedMetric& treatment,
                                                       const IndexedMetric& control, const BootstrapOptions& options) {
  // Paired: both systems are scored on the same resample.
  return BootstrapInterval(
      n, [&](const std::vector<size_t>& sample) { return treatment(sample) - control(sample); }, options);
}

IndexedMetric MeanOf(const std::vector<double>& per_example) {
  auto values = std::make_shared<const std::vector<double>>(per_example);
  return [values](const std::vector<size_t>& idx) {
    if (idx.empty()) return 0.0;
    double sum = 0;
    for (size_t i : idx) sum += (*values)[i];
    return sum / static_cast<double>(idx.size());
  };
}

nlohmann::json ConfidenceIntervalToJson(const ConfidenceInterval& ci) {
  return {{"point", ci.point},           {"lower", ci.lower},         {"upper", ci.upper},
          {"confidence", ci.confidence}, {"resamples", ci.resamples}, {"seed", ci.seed},
          {"method", "percentile bootstrap, paired"}};
}

ConfidenceInterval ConfidenceIntervalFromJson(const nlohmann::json& j) {
  ConfidenceInterval ci;
  ci.point = j.at("point").get<double>();
  ci.lower = j.at("lower").get<double>();
  ci.upper = j.at("upper").get<double>();
  ci.confidence = j.at("confidence").get<double>();
  ci.resamples = j.at("resamples").get<int>();
  ci.seed = j.at("seed").get<uint64_t>();
  return ci;
}

}  // namespace qlorad::eval

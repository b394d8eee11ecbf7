// Next-token selection from logits: greedy, or temperature + top-k + top-p
// sampling from a seeded generator. Deterministic for a fixed seed on any device
// (the distribution is computed on the CPU in fp32). -inf logits (a grammar mask) are never
// chosen; without top-k/top-p nothing is sorted (one pass over the vocabulary).
#ifndef QLORAD_CORE_MODEL_SAMPLER_H_
#define QLORAD_CORE_MODEL_SAMPLER_H_

#include <cstdint>
#include <random>

#include <ATen/ATen.h>

#include "absl/status/status.h"

namespace qlorad {

struct SamplingOptions {
  double temperature = 0.0;  // 0 = greedy
  int64_t top_k = 0;         // 0 = no limit
  double top_p = 1.0;        // 1 = no limit
  uint64_t seed = 0;
};

// INVALID_ARGUMENT naming the field for temperature < 0, top_k < 0, top_p outside (0, 1].
absl::Status ValidateSamplingOptions(const SamplingOptions& options);

class Sampler {
 public:
  explicit Sampler(const SamplingOptions& options) : options_(options), rng_(options.seed) {}
  // logits [vocab] (any device/dtype) -> chosen token id.
  int64_t Next(const at::Tensor& logits);

 private:
  SamplingOptions options_;
  std::mt19937_64 rng_;
};

}  // namespace qlorad

#endif  // QLORAD_CORE_MODEL_SAMPLER_H_

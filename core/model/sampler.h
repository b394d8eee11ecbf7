// Next-token selection from logits: greedy, or temperature + top-k + top-p
// sampling from a seeded generator. Deterministic for a fixed seed on any device
// (the distribution is computed on the CPU in fp32). -inf logits (a grammar mask) are never
// chosen. Nothing sorts the vocabulary: plain sampling is one pass, top-k a partial sort
// of k entries, top-p alone a weighted selection of the nucleus (expected linear time)
// and a sort of the nucleus only.
#ifndef QLORAD_CORE_MODEL_SAMPLER_H_
#define QLORAD_CORE_MODEL_SAMPLER_H_

#include <cstdint>
#include <random>
#include <vector>

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

// What sampling draws from: token ids and their unnormalised weights
// exp((logit - max) / temperature), in the order the draw walks them.
struct SamplingSupport {
  std::vector<int64_t> ids;
  std::vector<double> weights;
};

class Sampler {
 public:
  explicit Sampler(const SamplingOptions& options) : options_(options), rng_(options.seed) {}
  // logits [vocab] (any device/dtype) -> chosen token id.
  int64_t Next(const at::Tensor& logits);
  // The support of a non-greedy draw: the finite logits, cut to the top_k largest (ties:
  // lower id first), then to the nucleus: the fewest largest whose softmax mass reaches
  // top_p (up to rounding in the sums). Ids in descending order (ties: lower id first)
  // when top_k or top_p cut anything; otherwise in id order.
  SamplingSupport Support(const float* logits, int64_t vocab) const;

 private:
  SamplingOptions options_;
  std::mt19937_64 rng_;
};

}  // namespace qlorad

#endif  // QLORAD_CORE_MODEL_SAMPLER_H_

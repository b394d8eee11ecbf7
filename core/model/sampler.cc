#include "core/model/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "absl/strings/str_cat.h"

namespace qlorad {

absl::Status ValidateSamplingOptions(const SamplingOptions& o) {
  if (!(o.temperature >= 0)) return absl::InvalidArgumentError(absl::StrCat("temperature must be >= 0, got ", o.temperature));
  if (o.top_k < 0) return absl::InvalidArgumentError(absl::StrCat("top_k must be >= 0, got ", o.top_k));
  if (!(o.top_p > 0 && o.top_p <= 1)) return absl::InvalidArgumentError(absl::StrCat("top_p must be in (0, 1], got ", o.top_p));
  return absl::OkStatus();
}

int64_t Sampler::Next(const at::Tensor& logits) {
  at::Tensor cpu = logits.detach().to(at::kCPU, at::kFloat).contiguous();
  const float* data = cpu.data_ptr<float>();
  const int64_t vocab = cpu.numel();
  if (options_.temperature == 0) return std::max_element(data, data + vocab) - data;

  // Candidates by descending logit (ties: lower id first), cut by top-k.
  std::vector<int64_t> order(vocab);
  std::iota(order.begin(), order.end(), 0);
  int64_t keep = options_.top_k > 0 ? std::min(options_.top_k, vocab) : vocab;
  auto by_logit = [data](int64_t a, int64_t b) { return data[a] > data[b] || (data[a] == data[b] && a < b); };
  std::partial_sort(order.begin(), order.begin() + keep, order.end(), by_logit);
  order.resize(keep);

  std::vector<double> probs(keep);
  const double max_logit = data[order[0]];
  double total = 0;
  for (int64_t i = 0; i < keep; ++i) total += probs[i] = std::exp((data[order[i]] - max_logit) / options_.temperature);
  // Top-p: the smallest prefix whose probability mass reaches top_p.
  double cumulative = 0;
  int64_t nucleus = keep;
  for (int64_t i = 0; i < keep; ++i) {
    cumulative += probs[i] / total;
    if (cumulative >= options_.top_p) {
      nucleus = i + 1;
      break;
    }
  }
  double mass = std::accumulate(probs.begin(), probs.begin() + nucleus, 0.0);
  double draw = std::uniform_real_distribution<double>(0.0, mass)(rng_);
  for (int64_t i = 0; i < nucleus; ++i) {
    draw -= probs[i];
    if (draw < 0) return order[i];
  }
  return order[nucleus - 1];
}

}  // namespace qlorad

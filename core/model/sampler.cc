#include "core/model/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
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

  // Candidates: the finite logits (a grammar mask sets the rest to -inf).
  std::vector<int64_t> order;
  order.reserve(vocab);
  for (int64_t i = 0; i < vocab; ++i)
    if (data[i] != -std::numeric_limits<float>::infinity()) order.push_back(i);
  if (order.empty()) return std::max_element(data, data + vocab) - data;
  auto by_logit = [data](int64_t a, int64_t b) { return data[a] > data[b] || (data[a] == data[b] && a < b); };
  const bool truncated = options_.top_k > 0 && options_.top_k < static_cast<int64_t>(order.size());
  if (truncated) {  // descending by logit (ties: lower id first), cut by top-k
    std::partial_sort(order.begin(), order.begin() + options_.top_k, order.end(), by_logit);
    order.resize(options_.top_k);
  } else if (options_.top_p < 1) {
    std::sort(order.begin(), order.end(), by_logit);  // top-p needs the order; plain sampling does not
  }
  const int64_t keep = static_cast<int64_t>(order.size());
  double max_logit = data[order[0]];
  for (int64_t id : order) max_logit = std::max<double>(max_logit, data[id]);
  std::vector<double> probs(keep);
  double total = 0;
  for (int64_t i = 0; i < keep; ++i) total += probs[i] = std::exp((data[order[i]] - max_logit) / options_.temperature);
  // Top-p: the smallest prefix (by descending probability) whose mass reaches top_p.
  int64_t nucleus = keep;
  if (options_.top_p < 1) {
    double cumulative = 0;
    for (int64_t i = 0; i < keep; ++i) {
      cumulative += probs[i] / total;
      if (cumulative >= options_.top_p) {
        nucleus = i + 1;
        break;
      }
    }
  }
  double mass = std::accumulate(probs.begin(), probs.begin() + nucleus, 0.0);
  double draw = std::uniform_real_distribution<double>(0.0, mass)(rng_);
  for (int64_t i = 0; i < nucleus; ++i) {
    draw -= probs[i];
    if (draw < 0) return order[i];
  }
  // Rounding left some mass: the last candidate that has any.
  int64_t last = nucleus - 1;
  while (last > 0 && probs[last] == 0) --last;
  return order[last];
}

}  // namespace qlorad

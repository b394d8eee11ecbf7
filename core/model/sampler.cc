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

namespace {

// Moves the nucleus of order[0, n) to its front and returns its size: the fewest ids, by
// `before` (descending logit, ties by id), whose weights sum to at least `need`. Weighted
// quickselect: each round partitions the live range around a median-of-three pivot and
// keeps the side that holds the boundary.
template <typename Before>
size_t SelectNucleus(std::vector<int64_t>& order, const std::vector<double>& weight, double need, Before before) {
  size_t lo = 0, hi = order.size();
  while (hi - lo > 1) {
    const size_t mid = lo + (hi - lo) / 2;
    int64_t a = order[lo], b = order[mid], c = order[hi - 1];
    if (before(b, a)) std::swap(a, b);
    if (before(c, b)) std::swap(b, c);
    if (before(b, a)) std::swap(a, b);
    const int64_t pivot = b;
    auto split = std::partition(order.begin() + lo, order.begin() + hi, [&](int64_t id) { return before(id, pivot); });
    const size_t first_after = static_cast<size_t>(split - order.begin());
    double above = 0;
    for (size_t i = lo; i < first_after; ++i) above += weight[order[i]];
    if (above >= need) {
      hi = first_after;  // the boundary is among the ids before the pivot
      continue;
    }
    std::iter_swap(split, std::find(split, order.begin() + hi, pivot));
    need -= above + weight[pivot];
    if (need <= 0) return first_after + 1;
    lo = first_after + 1;
  }
  return hi;  // one id left (it completes the mass) or rounding left a little: all of [0, hi)
}

}  // namespace

SamplingSupport Sampler::Support(const float* data, int64_t vocab) const {
  SamplingSupport support;
  std::vector<int64_t>& order = support.ids;
  order.reserve(vocab);
  for (int64_t i = 0; i < vocab; ++i)
    if (data[i] != -std::numeric_limits<float>::infinity()) order.push_back(i);
  if (order.empty()) return support;
  auto before = [data](int64_t a, int64_t b) { return data[a] > data[b] || (data[a] == data[b] && a < b); };
  const bool truncated = options_.top_k > 0 && options_.top_k < static_cast<int64_t>(order.size());
  if (truncated) {
    std::partial_sort(order.begin(), order.begin() + options_.top_k, order.end(), before);
    order.resize(options_.top_k);
  }
  double max_logit = data[order[0]];
  for (int64_t id : order) max_logit = std::max<double>(max_logit, data[id]);
  auto weight_of = [&](int64_t id) { return std::exp((data[id] - max_logit) / options_.temperature); };
  // Top-p alone selects over every candidate: their weights, by id, computed once here.
  const bool select_nucleus = options_.top_p < 1 && !truncated;
  std::vector<double> weight(select_nucleus ? vocab : 0);
  double total = 0;
  for (int64_t id : order) {
    const double w = weight_of(id);
    total += w;
    if (select_nucleus) weight[id] = w;
  }
  size_t nucleus = order.size();
  if (options_.top_p < 1 && truncated) {  // sorted already: the shortest prefix
    double cumulative = 0;
    for (size_t i = 0; i < order.size(); ++i)
      if ((cumulative += weight_of(order[i]) / total) >= options_.top_p) {
        nucleus = i + 1;
        break;
      }
  } else if (select_nucleus) {
    nucleus = SelectNucleus(order, weight, options_.top_p * total, before);
    // Draws walk the nucleus in descending order, as when the whole vocabulary was sorted,
    // so a seed gives the tokens it gave before.
    std::sort(order.begin(), order.begin() + nucleus, before);
  }
  order.resize(nucleus);
  for (int64_t id : order) support.weights.push_back(select_nucleus ? weight[id] : weight_of(id));
  return support;
}

int64_t Sampler::Next(const at::Tensor& logits) {
  at::Tensor cpu = logits.detach().to(at::kCPU, at::kFloat).contiguous();
  const float* data = cpu.data_ptr<float>();
  const int64_t vocab = cpu.numel();
  if (options_.temperature == 0) return std::max_element(data, data + vocab) - data;
  const SamplingSupport support = Support(data, vocab);
  if (support.ids.empty()) return std::max_element(data, data + vocab) - data;
  const std::vector<double>& w = support.weights;
  double draw = std::uniform_real_distribution<double>(0.0, std::accumulate(w.begin(), w.end(), 0.0))(rng_);
  for (size_t i = 0; i < w.size(); ++i) {
    draw -= w[i];
    if (draw < 0) return support.ids[i];
  }
  // Rounding left some mass: the last candidate that has any.
  size_t last = w.size() - 1;
  while (last > 0 && w[last] == 0) --last;
  return support.ids[last];
}

}  // namespace qlorad

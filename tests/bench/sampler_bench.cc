// Sampling cost per token (issue 18): Sampler::Next (top-p by weighted selection) on random
// logits against the full sort of the vocabulary it replaced (written here), medians of --reps calls.
//   sampler_bench [--reps 200]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "core/model/sampler.h"
#include "tests/bench/bench_args.h"

namespace {

// The replaced top-p path: every finite id sorted by logit before the nucleus cut.
int64_t FullSortTopP(const float* data, int64_t vocab, double temperature, double top_p, std::mt19937_64& rng) {
  std::vector<int64_t> order(vocab);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [data](int64_t a, int64_t b) { return data[a] > data[b] || (data[a] == data[b] && a < b); });
  const double max_logit = data[order[0]];
  std::vector<double> probs(vocab);
  double total = 0;
  for (int64_t i = 0; i < vocab; ++i) total += probs[i] = std::exp((data[order[i]] - max_logit) / temperature);
  double cumulative = 0;
  int64_t nucleus = vocab;
  for (int64_t i = 0; i < vocab; ++i)
    if ((cumulative += probs[i] / total) >= top_p) {
      nucleus = i + 1;
      break;
    }
  double draw = std::uniform_real_distribution<double>(0.0, std::accumulate(probs.begin(), probs.begin() + nucleus, 0.0))(rng);
  for (int64_t i = 0; i < nucleus; ++i)
    if ((draw -= probs[i]) < 0) return order[i];
  return order[nucleus - 1];
}

template <typename F>
double MedianMicros(int reps, F&& f) {
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const auto start = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count());
  }
  std::nth_element(t.begin(), t.begin() + t.size() / 2, t.end());
  return t[t.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const int reps = std::stoi(qlorad::bench::Arg(argc, argv, "reps", "200"));
  std::printf("| vocab | logits | top-p | qlorad Sampler µs | full sort µs | speed-up |\n|---|---|---|---:|---:|---:|\n");
  for (int64_t vocab : {32000, 128256}) {
    for (double scale : {1.0, 4.0}) {
      std::mt19937_64 gen(1);
      std::normal_distribution<float> normal(0.0f, static_cast<float>(scale));
      std::vector<float> logits(vocab);
      for (float& x : logits) x = normal(gen);
      const at::Tensor t = at::from_blob(logits.data(), {vocab}, at::kFloat);
      for (double top_p : {0.9, 0.95}) {
        qlorad::Sampler sampler({1.0, 0, top_p, 3});
        std::mt19937_64 rng(3);
        volatile int64_t sink = 0;
        const double ours = MedianMicros(reps, [&] { sink = sampler.Next(t); });
        const double full = MedianMicros(reps, [&] { sink = FullSortTopP(logits.data(), vocab, 1.0, top_p, rng); });
        std::printf("| %lld | N(0, %.0f²) | %.2f | %.0f | %.0f | %.1f× |\n", static_cast<long long>(vocab), scale, top_p,
                    ours, full, full / ours);
      }
    }
  }
  return 0;
}

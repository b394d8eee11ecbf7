// DriftWindow costs (issue 10): Add() on the request path, alone and while a
// reporter thread computes reports back to back; ComputeReport() (snapshot +
// statistics, off the request path) per window size and embedding dimension.
// Synthetic prompts: Zipf(1.1) token ids over a 32000 vocabulary, 5-40 tokens.
// Built as a target only (not a ctest test); see tests/bench/RESULTS.md.
//   build/tests/core/monitor/drift_window_bench
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <thread>
#include <vector>

#include "core/monitor/drift_window.h"

namespace qm = qlorad::monitor;
using Clock = std::chrono::steady_clock;

namespace {

std::vector<qm::PromptSample> MakePrompts(size_t n, int dim, uint32_t seed) {
  std::mt19937 rng(seed);
  // Zipf via inverse CDF over ranks 1..32000.
  std::vector<double> cdf(32000);
  double total = 0;
  for (size_t r = 0; r < cdf.size(); ++r) cdf[r] = (total += 1.0 / std::pow(r + 1.0, 1.1));
  std::uniform_real_distribution<double> u(0, total);
  std::uniform_int_distribution<int> len(5, 40);
  std::normal_distribution<float> g(0, 1);
  std::vector<qm::PromptSample> out(n);
  for (auto& p : out) {
    const int l = len(rng);
    for (int i = 0; i < l; ++i) {
      p.token_ids.push_back(static_cast<int32_t>(std::lower_bound(cdf.begin(), cdf.end(), u(rng)) - cdf.begin()));
    }
    for (int d = 0; d < dim; ++d) p.embedding.push_back(1.0f + 0.3f * g(rng));
  }
  return out;
}

double Percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(q * (v.size() - 1))];
}

void BenchAdd(const std::shared_ptr<const qm::DriftProfile>& ref, int dim, bool concurrent_reports) {
  qm::DriftWindowOptions o;
  o.max_prompts = 500;
  auto w = *qm::DriftWindow::Create(ref, o);
  auto prompts = MakePrompts(20000, dim, 7);
  std::atomic<bool> stop{false};
  std::atomic<int> reports{0};
  std::thread reporter;
  if (concurrent_reports) {
    for (size_t i = 0; i < 500; ++i) (void)w->Add(prompts[i]);
    reporter = std::thread([&] {
      while (!stop.load()) {
        if (w->ComputeReport().ok()) ++reports;
      }
    });
  }
  std::vector<double> ns;
  ns.reserve(prompts.size());
  for (auto& p : prompts) {
    auto t0 = Clock::now();
    (void)w->Add(std::move(p));
    ns.push_back(std::chrono::duration<double, std::nano>(Clock::now() - t0).count());
  }
  stop = true;
  if (reporter.joinable()) reporter.join();
  std::printf("Add(), window 500, dim %4d, %-26s: p50 %7.0f ns  p99 %7.0f ns  max %8.0f ns  (%d reports meanwhile)\n",
              dim, concurrent_reports ? "reports computed meanwhile" : "no concurrent reports",
              Percentile(ns, 0.5), Percentile(ns, 0.99), Percentile(ns, 1.0), reports.load());
}

void BenchCompute(const std::shared_ptr<const qm::DriftProfile>& ref, size_t window, int dim) {
  qm::DriftWindowOptions o;
  o.max_prompts = window;
  auto w = *qm::DriftWindow::Create(ref, o);
  for (auto& p : MakePrompts(window, dim, 11)) (void)w->Add(std::move(p));
  std::vector<double> snap_us, total_us;
  for (int i = 0; i < 30; ++i) {
    auto t0 = Clock::now();
    auto s = w->TakeSnapshot();
    auto t1 = Clock::now();
    auto r = w->ComputeReport();
    auto t2 = Clock::now();
    if (!r.ok()) std::printf("error: %s\n", r.status().ToString().c_str());
    snap_us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    total_us.push_back(std::chrono::duration<double, std::micro>(t2 - t1).count());
  }
  std::printf("window %6zu prompts, dim %4d: TakeSnapshot (lock held) p50 %8.1f us; ComputeReport p50 %9.1f us\n",
              window, dim, Percentile(snap_us, 0.5), Percentile(total_us, 0.5));
}

}  // namespace

int main() {
  for (int dim : {0, 4096}) {
    auto ref_prompts = MakePrompts(5000, dim, 3);
    auto ref = std::make_shared<const qm::DriftProfile>(*qm::DriftProfile::Build(ref_prompts));
    for (size_t window : {100, 500, 2000, 10000}) BenchCompute(ref, window, dim);
    BenchAdd(ref, dim, false);
    BenchAdd(ref, dim, true);
  }
  return 0;
}

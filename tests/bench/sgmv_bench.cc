// The CPU SGMV kernel in a serving decode step, alone: 84 projections (a 12-layer Llama with
// hidden 768, 4 KV heads of 64, intermediate 2048) × N distinct rank-r adapters, one row each,
// every adapter different so the ~333 MB of A/B factors (N = 32, r = 16) come from DRAM as in
// serving. Compared in the same run with the formulation it replaced for decode rows: two
// cblas_sgemm calls per row, rows spread over the same pool.
//   sgmv_bench [--adapters 32] [--rank 16] [--reps 7]
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "kernels/parallel.h"
#include "kernels/sgmv.h"
#include "tests/bench/bench_args.h"

namespace qlorad::kernels {
namespace {

struct Module {
  int64_t in, out;
};

std::vector<Module> DecoderModules() {
  std::vector<Module> modules;
  for (int layer = 0; layer < 12; ++layer)
    for (Module m : {Module{768, 768}, Module{768, 256}, Module{768, 256}, Module{768, 768}, Module{768, 2048},
                     Module{768, 2048}, Module{2048, 768}})
      modules.push_back(m);
  return modules;
}

void BlasRows(absl::Span<const SgmvItem> items, int64_t in, int64_t out) {
  ParallelFor(
      static_cast<int64_t>(items.size()), 1,
      [&](int64_t begin, int64_t end) {
        std::vector<float> t;
        for (int64_t i = begin; i < end; ++i) {
          const SgmvItem& it = items[i];
          const int r = static_cast<int>(it.rank);
          t.resize(r);
          const int k = static_cast<int>(in), n = static_cast<int>(out);
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, 1, r, k, 1.0f, it.x, k, it.a, k, 0.0f, t.data(), r);
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, 1, n, r, it.scaling, t.data(), r, it.b, r, 1.0f, it.y, n);
        }
      },
      /*helpers_linger=*/false);
}

int Run(int adapters, int rank, int reps) {
  if (adapters < 1 || rank < 1 || reps < 1) {
    std::fprintf(stderr, "sgmv_bench: --adapters, --rank and --reps must be >= 1\n");
    return 2;
  }
  const std::vector<Module> modules = DecoderModules();
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<std::vector<float>> a, b;
  double megabytes = 0;
  for (const Module& m : modules)
    for (int i = 0; i < adapters; ++i) {
      a.emplace_back(rank * m.in);
      b.emplace_back(m.out * rank);
      for (float& v : a.back()) v = normal(rng);
      for (float& v : b.back()) v = normal(rng);
      megabytes += 4.0 * rank * (m.in + m.out) / 1e6;
    }
  std::vector<float> x(adapters * 2048), y(adapters * 2048, 0.0f);
  for (float& v : x) v = normal(rng);
  std::printf("%zu projections x %d distinct rank-%d adapters, one row each: %.0f MB of factors per step, %d threads\n",
              modules.size(), adapters, rank, megabytes, NumThreads());
  const char* names[] = {"two cblas_sgemm per row", "SgmvF32"};
  std::vector<double> ms[2];
  for (int rep = 0; rep < reps; ++rep)
    for (int path = 0; path < 2; ++path) {
      const auto start = std::chrono::steady_clock::now();
      size_t k = 0;
      for (const Module& m : modules) {
        std::vector<SgmvItem> items;
        for (int i = 0; i < adapters; ++i, ++k)
          items.push_back({x.data() + i * m.in, y.data() + i * m.out, 1, a[k].data(), b[k].data(), rank, 2.0f});
        if (path == 0) {
          BlasRows(items, m.in, m.out);
        } else if (!SgmvF32(items, m.in, m.out).ok()) {
          return 1;
        }
      }
      ms[path].push_back(1e3 * std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
  for (int path = 0; path < 2; ++path) {
    std::vector<double> v = ms[path];
    std::sort(v.begin(), v.end());
    const double median = bench::Median(v);
    std::printf("%-24s median %.1f ms per step (%.1f-%.1f), %.1f GB/s\n", names[path], median, v.front(), v.back(),
                megabytes / median);
  }
  return 0;
}

}  // namespace
}  // namespace qlorad::kernels

int main(int argc, char** argv) {
  using qlorad::bench::Arg;
  return qlorad::kernels::Run(std::stoi(Arg(argc, argv, "adapters", "32")), std::stoi(Arg(argc, argv, "rank", "16")),
                              std::stoi(Arg(argc, argv, "reps", "7")));
}

// The CPU SGMV kernel in a serving decode step, alone: 84 projections (a 12-layer Llama with
// hidden 768, 4 KV heads of 64, intermediate 2048) × N distinct rank-r adapters, one row each,
// every adapter different so the ~333 MB of A/B factors (N = 32, r = 16) come from DRAM as in
// serving. Compared in the same run with the formulation it replaced for decode rows: two
// cblas_sgemm calls per row, rows spread over the same pool; and with the same factors
// rounded to bf16 (--adapter-factors bf16: half the bytes), and with B stored transposed.
//   sgmv_bench [--adapters 32] [--rank 16] [--reps 7]
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/util/cpu_runtime.h"
#include "kernels/bf16.h"
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
          const auto* a = static_cast<const float*>(it.a);
          const auto* b = static_cast<const float*>(it.b);
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, 1, r, k, 1.0f, it.x, k, a, k, 0.0f, t.data(), r);
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, 1, n, r, it.scaling, t.data(), r, b, r, 1.0f, it.y, n);
        }
      },
      /*helpers_linger=*/false);
}

// One adapter's factors for one projection, in every layout the paths read.
struct Factors {
  std::vector<float> a, b, b_t;  // A [r, in], B [out, r], Bᵀ [r, out]
  std::vector<uint16_t> a16, b_t16;
};

Factors RandomFactors(const Module& m, int rank, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Factors f;
  for (int64_t i = 0; i < rank * m.in; ++i) f.a.push_back(normal(rng));
  for (int64_t i = 0; i < m.out * rank; ++i) f.b.push_back(normal(rng));
  for (int j = 0; j < rank; ++j)
    for (int64_t o = 0; o < m.out; ++o) f.b_t.push_back(f.b[o * rank + j]);
  for (float v : f.a) f.a16.push_back(FloatToBf16(v));
  for (float v : f.b_t) f.b_t16.push_back(FloatToBf16(v));
  return f;
}

struct Path {
  const char* name;
  bool blas, bf16, transposed;
};

SgmvItem ItemOf(const Path& path, const Factors& f, const float* x, float* y, int rank) {
  if (path.bf16) return {x, y, 1, f.a16.data(), f.b_t16.data(), rank, 2.0f, WeightFormat::kBf16, true};
  return {x, y, 1, f.a.data(), path.transposed ? f.b_t.data() : f.b.data(), rank, 2.0f, WeightFormat::kF32,
          path.transposed};
}

int Run(int adapters, int rank, int reps) {
  if (adapters < 1 || rank < 1 || reps < 1) {
    std::fprintf(stderr, "sgmv_bench: --adapters, --rank and --reps must be >= 1\n");
    return 2;
  }
  const std::vector<Module> modules = DecoderModules();
  std::mt19937 rng(1);
  std::vector<Factors> factors;
  double megabytes = 0;
  for (const Module& m : modules)
    for (int i = 0; i < adapters; ++i) {
      factors.push_back(RandomFactors(m, rank, rng));
      megabytes += 4.0 * rank * (m.in + m.out) / 1e6;
    }
  std::vector<float> x(adapters * 2048), y(adapters * 2048, 0.0f);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (float& v : x) v = normal(rng);
  std::printf("%zu projections x %d distinct rank-%d adapters, one row each: %.0f MB of fp32 factors per step, %d threads\n",
              modules.size(), adapters, rank, megabytes, NumThreads());
  const Path paths[] = {{"two cblas_sgemm per row", true, false, false},
                        {"SgmvF32, B [out, r]", false, false, false},
                        {"SgmvF32, B^T [r, out]", false, false, true},
                        {"SgmvF32, B^T, bf16", false, true, true}};
  constexpr int kPaths = sizeof(paths) / sizeof(paths[0]);
  std::vector<double> ms[kPaths];
  for (int rep = 0; rep < reps; ++rep)
    for (int p = 0; p < kPaths; ++p) {
      const auto start = std::chrono::steady_clock::now();
      size_t k = 0;
      for (const Module& m : modules) {
        std::vector<SgmvItem> items;
        for (int i = 0; i < adapters; ++i, ++k)
          items.push_back(ItemOf(paths[p], factors[k], x.data() + i * m.in, y.data() + i * m.out, rank));
        if (paths[p].blas) {
          BlasRows(items, m.in, m.out);
        } else if (!SgmvF32(items, m.in, m.out).ok()) {
          return 1;
        }
      }
      ms[p].push_back(1e3 * std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
  for (int p = 0; p < kPaths; ++p) {
    std::vector<double> v = ms[p];
    std::sort(v.begin(), v.end());
    const double median = bench::Median(v);
    std::printf("%-24s median %.1f ms per step (%.1f-%.1f), %.1f GB/s\n", paths[p].name, median, v.front(), v.back(),
                (paths[p].bf16 ? megabytes / 2 : megabytes) / median);
  }
  return 0;
}

}  // namespace
}  // namespace qlorad::kernels

int main(int argc, char** argv) {
  qlorad::ConfigureCpuRuntime(argv);
  using qlorad::bench::Arg;
  return qlorad::kernels::Run(std::stoi(Arg(argc, argv, "adapters", "32")), std::stoi(Arg(argc, argv, "rank", "16")),
                              std::stoi(Arg(argc, argv, "reps", "7")));
}

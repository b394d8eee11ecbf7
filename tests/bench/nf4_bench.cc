// nf4_bench: speed of the NF4 kernels (issue 4), each against a reference measured in
// the same run. Not a ctest; run by hand (results: tests/bench/RESULTS.md).
//   (a) dequant GB/s of output vs memcpy GB/s (same thread count)   goal >= 0.7x
//   (b) fused NF4 matmul, batch 1..8, [4096,4096] / [11008,4096] / [4096,11008], vs fp32
//       at::matmul on the dequantized weight                         goal >= 4x at batch 1
//   (c) quantize (NF4 + double quant) seconds per billion parameters
//   (d) NF4 matmul with 8-bit activations (gemm4bit_q8.h) at batch 1 on the 134M decode
//       shapes, as the fused decoder calls it (rows split across the kernel threads):
//       GB/s of packed weights read vs the threaded read bandwidth, each ISA body
//
//   nf4_bench [--quick] [--threads N] [--isa scalar|avx2|avx512] [--only-q8 [--hot]]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "kernels/blockwise8bit.h"
#include "kernels/cpu_isa.h"
#include "kernels/gemm4bit.h"
#include "kernels/gemm4bit_q8.h"
#include "kernels/parallel.h"
#include "kernels/quant4bit.h"
#include "kernels/quant_tables.h"

namespace {

using Clock = std::chrono::steady_clock;
namespace k = qlorad::kernels;

// Best (minimum) seconds of fn over repeats, running at least min_seconds in total.
double BestSeconds(const std::function<void()>& fn, double min_seconds = 0.3, int min_reps = 3) {
  fn();  // warm-up
  double best = 1e30, total = 0;
  for (int rep = 0; rep < min_reps || total < min_seconds; ++rep) {
    const auto t0 = Clock::now();
    fn();
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    best = std::min(best, s);
    total += s;
    if (rep > 1000) break;
  }
  return best;
}

// Best seconds of each function, timed in turn (f0, f1, ..., f0, f1, ...) so that load
// from other processes on a shared machine hits all alike; at least min_seconds in total.
std::vector<double> BestInterleaved(const std::vector<std::function<void()>>& fns,
                                    double min_seconds = 1.0, int min_rounds = 10) {
  for (const auto& fn : fns) fn();
  std::vector<double> best(fns.size(), 1e30);
  double total = 0;
  for (int round = 0; round < min_rounds || total < min_seconds; ++round) {
    for (size_t i = 0; i < fns.size(); ++i) {
      const auto t0 = Clock::now();
      fns[i]();
      const double sec = std::chrono::duration<double>(Clock::now() - t0).count();
      best[i] = std::min(best[i], sec);
      total += sec;
    }
    if (round > 2000) break;
  }
  return best;
}

void Check(const absl::Status& s) {
  if (!s.ok()) {
    std::fprintf(stderr, "nf4_bench: %s\n", std::string(s.message()).c_str());
    std::exit(1);
  }
}

struct Quantized {
  std::vector<uint8_t> packed, codes;
  std::vector<float> absmax, nested;
  float offset = 0;
  k::Packed4bitView View(int64_t n) const {
    k::Packed4bitView w;
    w.packed = packed;
    w.numel = n;
    w.blocksize = 64;
    w.scales.codes = codes;
    w.scales.nested_absmax = nested;
    w.scales.nested_code = absl::MakeConstSpan(k::kDynamicMapSigned, 256);
    w.scales.offset = offset;
    return w;
  }
};

Quantized QuantizeNf4(const std::vector<float>& x) {
  const int64_t n = static_cast<int64_t>(x.size());
  Quantized q;
  q.packed.resize(k::PackedBytes(n));
  q.absmax.resize(k::NumBlocks(n, 64));
  Check(k::Quantize4bit(k::QuantType::kNF4, x, 64, absl::MakeSpan(q.packed), absl::MakeSpan(q.absmax)));
  q.codes.resize(q.absmax.size());
  q.nested.resize(k::NumBlocks(q.absmax.size(), 256));
  auto off = k::DoubleQuantizeAbsmax(q.absmax, 256, absl::MakeConstSpan(k::kDynamicMapSigned, 256),
                                     absl::MakeSpan(q.codes), absl::MakeSpan(q.nested));
  Check(off.status());
  q.offset = *off;
  return q;
}

std::vector<float> RandomVector(int64_t n) {
  at::Tensor t = at::randn({n});
  return std::vector<float>(t.data_ptr<float>(), t.data_ptr<float>() + n);
}

void BenchDequant(int64_t n) {
  std::printf("\n(a) dequantize %lld NF4 values (blocksize 64, double-quant scales), %d threads\n",
              static_cast<long long>(n), k::NumThreads());
  const std::vector<float> x = RandomVector(n);
  const Quantized q = QuantizeNf4(x);
  const k::Packed4bitView w = q.View(n);
  std::vector<float> out(n), src(x), dst(n);
  std::vector<uint16_t> out16(n);
  const double t_memcpy1 = BestSeconds([&] { std::memcpy(dst.data(), src.data(), n * 4); });
  const std::vector<double> t = BestInterleaved({
      [&] {
        k::ParallelFor(n, 1 << 20, [&](int64_t b, int64_t e) {
          std::memcpy(dst.data() + b, src.data() + b, (e - b) * 4);
        });
      },
      [&] { Check(k::Dequantize4bit(w, 0, n, absl::MakeSpan(out))); }});
  const double t_memcpy = t[0], t_f32 = t[1];
  const double t_bf16 = BestSeconds([&] { Check(k::Dequantize4bit(w, 0, n, absl::MakeSpan(out16))); });
  const double gb = 1e-9 * n * 4;
  std::printf("  memcpy  1 thread : %7.2f GB/s  (%lld MB copied)\n", gb / t_memcpy1,
              static_cast<long long>(n * 4 >> 20));
  std::printf("  memcpy  %d threads: %7.2f GB/s  (reference)\n", k::NumThreads(), gb / t_memcpy);
  std::printf("  dequant -> fp32  : %7.2f GB/s of output = %.2fx memcpy\n", gb / t_f32,
              t_memcpy / t_f32);
  std::printf("  dequant -> bf16  : %7.2f GB/s of output = %.2fx memcpy (%.2f Gelem/s)\n",
              gb / 2 / t_bf16, (gb / 2 / t_bf16) / (gb / t_memcpy), 1e-9 * n / t_bf16);
}

void BenchMatmul(int64_t out, int64_t in, int max_batch) {
  std::printf("\n(b) fused NF4 matmul W[%lld, %lld] vs fp32 at::matmul on the dequantized W "
              "(%d kernel threads, %d ATen threads)\n",
              static_cast<long long>(out), static_cast<long long>(in), k::NumThreads(),
              at::get_num_threads());
  const int64_t n = out * in;
  const std::vector<float> wf = RandomVector(n);
  const Quantized q = QuantizeNf4(wf);
  const k::Packed4bitView w = q.View(n);
  at::Tensor wd = at::empty({out, in});
  Check(k::Dequantize4bit(w, 0, n, absl::MakeSpan(wd.data_ptr<float>(), n)));
  const at::Tensor wdt = wd.t();
  // On an AVX-512 CPU the AVX2 kernel is timed too, as the fallback other CPUs get.
  const bool also_avx2 = k::ActiveIsa() == k::CpuIsa::kAvx512;
  std::printf("  batch   fused ms (%s)   fp32 ms   speedup%s   max rel diff\n",
              k::CpuIsaName(k::ActiveIsa()), also_avx2 ? "   avx2 ms   avx2 speedup" : "");
  for (int batch = 1; batch <= max_batch; ++batch) {
    const at::Tensor x = at::randn({batch, in});
    at::Tensor y = at::empty({batch, out});
    auto fused = [&] {
      Check(k::Gemm4bit(w, out, in, absl::MakeConstSpan(x.data_ptr<float>(), batch * in), batch, {},
                        absl::MakeSpan(y.data_ptr<float>(), batch * out)));
    };
    at::Tensor yr;
    std::vector<std::function<void()>> fns = {fused, [&] { yr = at::matmul(x, wdt); }};
    if (also_avx2) {
      fns.push_back([&] {
        k::LimitIsaForTesting(k::CpuIsa::kAvx2);
        fused();
        k::LimitIsaForTesting(k::CpuIsa::kAvx512);
      });
    }
    const std::vector<double> t = BestInterleaved(fns);
    fused();
    const double diff = ((y - yr).abs().max() / yr.abs().max()).item<double>();
    std::printf("  %5d   %8.3f            %7.3f   %6.2fx", batch, t[0] * 1e3, t[1] * 1e3, t[1] / t[0]);
    if (also_avx2) std::printf("   %7.3f   %6.2fx      ", t[2] * 1e3, t[1] / t[2]);
    std::printf("     %.1e\n", diff);
  }
}

void BenchQuantize(int64_t n) {
  std::printf("\n(c) quantize %lld values to NF4 (blocksize 64) + double quant, %d threads\n",
              static_cast<long long>(n), k::NumThreads());
  const std::vector<float> x = RandomVector(n);
  std::vector<uint16_t> xb(n);
  {
    at::Tensor t = at::from_blob(const_cast<float*>(x.data()), {n}).to(at::kBFloat16);
    std::memcpy(xb.data(), t.data_ptr<at::BFloat16>(), n * 2);
  }
  Quantized q;
  q.packed.resize(k::PackedBytes(n));
  q.absmax.resize(k::NumBlocks(n, 64));
  q.codes.resize(q.absmax.size());
  q.nested.resize(k::NumBlocks(q.absmax.size(), 256));
  auto dq = [&] {
    Check(k::DoubleQuantizeAbsmax(q.absmax, 256, absl::MakeConstSpan(k::kDynamicMapSigned, 256),
                                  absl::MakeSpan(q.codes), absl::MakeSpan(q.nested))
              .status());
  };
  const double t32 = BestSeconds([&] {
    Check(k::Quantize4bit(k::QuantType::kNF4, x, 64, absl::MakeSpan(q.packed), absl::MakeSpan(q.absmax)));
    dq();
  }, 0.5, 2);
  const double t16 = BestSeconds([&] {
    Check(k::Quantize4bit(k::QuantType::kNF4, xb, 64, absl::MakeSpan(q.packed), absl::MakeSpan(q.absmax)));
    dq();
  }, 0.5, 2);
  const double tdq = BestSeconds(dq, 0.2, 2);
  std::printf("  fp32 input: %.3f s per billion parameters\n", t32 * 1e9 / n);
  std::printf("  bf16 input: %.3f s per billion parameters\n", t16 * 1e9 / n);
  std::printf("  (of which double quant of the absmax: %.3f s per billion)\n", tdq * 1e9 / n);
}

// Threaded sum over `bytes` (the pool's threads): the read-bandwidth reference of (d).
double ThreadedReadSeconds(const std::vector<uint8_t>& buffer) {
  const int64_t words = static_cast<int64_t>(buffer.size() / 8);
  const auto* data = reinterpret_cast<const uint64_t*>(buffer.data());
  std::vector<uint64_t> sums(64 * 1024, 0);
  return BestSeconds([&] {
    k::ParallelFor(words, 1 << 16, [&](int64_t b, int64_t e) {
      uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (int64_t i = b; i + 4 <= e; i += 4) {
        s0 += data[i];
        s1 += data[i + 1];
        s2 += data[i + 2];
        s3 += data[i + 3];
      }
      sums[(b >> 16) % sums.size()] += s0 + s1 + s2 + s3;
    });
  }, 0.5, 5);
}

void BenchQ8(const std::vector<std::pair<int64_t, int64_t>>& shapes, bool plain_scales, bool hot) {
  std::printf("\n(d) NF4 x int8-activation matmul, batch 1, %d kernel threads, %s scales, weights %s: "
              "packed weight GB/s\n",
              k::NumThreads(), plain_scales ? "plain fp32" : "double-quant",
              hot ? "hot (one copy, cache-resident where it fits: the compute ceiling)" : "cold");
  std::vector<uint8_t> read_buffer(int64_t{1} << 30, 1);
  const double read_gbps = 1e-9 * static_cast<double>(read_buffer.size()) / ThreadedReadSeconds(read_buffer);
  read_buffer = {};
  std::printf("  threaded read reference: %.1f GB/s\n  shape             ", read_gbps);
  std::vector<k::CpuIsa> isas;
  for (k::CpuIsa isa : {k::CpuIsa::kAvx512, k::CpuIsa::kAvx2, k::CpuIsa::kScalar})
    if (isa <= k::ActiveIsa()) isas.push_back(isa);
  for (k::CpuIsa isa : isas) std::printf("  %-8s GB/s (share)", k::CpuIsaName(isa));
  std::printf("\n");
  for (auto [out, in] : shapes) {
    // Cold: several copies of W so that one call's weights are not in the last-level cache.
    const int64_t n = out * in, copies = hot ? 1 : std::max<int64_t>(1, (int64_t{256} << 20) / (n / 2));
    std::vector<Quantized> q;
    for (int64_t c = 0; c < copies; ++c) q.push_back(QuantizeNf4(RandomVector(n)));
    const std::vector<float> x = RandomVector(in);
    std::vector<int8_t> values(in);
    std::vector<float> scales(k::Q8ScaleFloats(1, in)), y(out);
    int64_t next = 0;
    std::vector<std::function<void()>> fns;
    for (k::CpuIsa isa : isas) {
      fns.push_back([&, isa] {
        k::LimitIsaForTesting(isa);
        const k::Q8Input input = k::QuantizeQ8Input(x.data(), 1, in, values.data(), scales.data());
        const Quantized& weights = q[next++ % copies];
        k::Packed4bitView w = weights.View(n);
        if (plain_scales) {
          w.scales = k::AbsmaxView{};
          w.scales.absmax = weights.absmax;
        }
        const int64_t quads = (out + 3) / 4;
        k::ParallelFor(quads, std::max<int64_t>(4, 4096 / in) / 4 + 1, [&](int64_t b, int64_t e) {
          k::Gemm4bitQ8Rows(w, input, nullptr, y.data(), out, 4 * b, std::min(out, 4 * e));
        });
      });
    }
    const std::vector<double> t = BestInterleaved(fns, 1.0, 20);
    k::LimitIsaForTesting(k::CpuIsa::kAvx512);
    // Bytes counted: the packed nibbles plus one byte per 64-weight block (the double-quant
    // codes); plain fp32 scales read 4 bytes per block, so that column slightly undercounts.
    const double gb = 1e-9 * (static_cast<double>(n) / 2 + static_cast<double>(n) / 64);
    std::printf("  [%5lld, %5lld]  ", static_cast<long long>(out), static_cast<long long>(in));
    for (double sec : t) std::printf("  %8.1f      (%3.0f%%)", gb / sec, 100 * gb / sec / read_gbps);
    std::printf("\n");
  }
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false, only_q8 = false, hot = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") {
      quick = true;
    } else if (a == "--only-q8") {
      only_q8 = true;
    } else if (a == "--hot") {
      hot = true;
    } else if (a == "--threads" && i + 1 < argc) {
      k::SetNumThreads(std::atoi(argv[++i]));
    } else if (a == "--isa" && i + 1 < argc) {
      const std::string isa = argv[++i];
      k::LimitIsaForTesting(isa == "scalar" ? k::CpuIsa::kScalar
                            : isa == "avx2" ? k::CpuIsa::kAvx2 : k::CpuIsa::kAvx512);
    } else {
      std::fprintf(stderr, "usage: nf4_bench [--quick] [--threads N] [--isa scalar|avx2|avx512] [--only-q8 [--hot]]\n");
      return 2;
    }
  }
  at::set_num_threads(k::NumThreads());
  at::manual_seed(0);
  std::printf("nf4_bench: kernels: %s (quantize/dequantize: %s), threads: %d\n",
              k::CpuIsaName(k::ActiveIsa()),
              k::ActiveIsa() >= k::CpuIsa::kAvx2 ? "avx2" : "scalar", k::NumThreads());
  // The 134M model's decode shapes (q/k/v/o, gate/up, down, the vocabulary head), then
  // longer rows (Q8SingleRowTiles' threshold and a 7B-sized square).
  const std::vector<std::pair<int64_t, int64_t>> q8_shapes = {{768, 768},   {2048, 768},  {768, 2048}, {32000, 768},
                                                              {2048, 1024}, {2048, 1536}, {4096, 4096}};
  if (hot && !only_q8) {
    std::fprintf(stderr, "nf4_bench: --hot applies to --only-q8 only\n");
    return 2;
  }
  if (only_q8) {
    BenchQ8(q8_shapes, true, hot);
    BenchQ8(q8_shapes, false, hot);
    return 0;
  }
  BenchDequant(quick ? (int64_t{1} << 22) : (int64_t{1} << 25));
  BenchMatmul(4096, 4096, quick ? 2 : 8);
  if (!quick) {
    BenchMatmul(11008, 4096, 8);
    BenchMatmul(4096, 11008, 8);
  }
  BenchQuantize(quick ? (int64_t{1} << 22) : 4096 * 11008);
  BenchQ8(q8_shapes, true, false);
  BenchQ8(q8_shapes, false, false);
  return 0;
}

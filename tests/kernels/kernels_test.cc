// Unit tests of the CPU kernels: argument errors, AVX2 == scalar, range dequant,
// the fused matmul (every instruction set this CPU has) against a double-precision
// reference, the thread pool.
// Bit-exactness against the Python reference lives in nf4_kernels_test.py.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "kernels/blockwise8bit.h"
#include "kernels/cpu_isa.h"
#include "kernels/gemm4bit.h"
#include "kernels/parallel.h"
#include "kernels/quant4bit.h"
#include "kernels/quant_tables.h"
#include "tests/testing/status_matchers.h"

namespace qlorad::kernels {
namespace {

using ::qlorad::testing::StatusIs;
using ::testing::HasSubstr;

std::vector<float> RandomNormal(int64_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = dist(gen);
  return v;
}

struct Quantized {
  std::vector<uint8_t> packed;
  std::vector<float> absmax;
  Packed4bitView View(QuantType type, int64_t n, int64_t blocksize) const {
    Packed4bitView w;
    w.type = type;
    w.packed = packed;
    w.numel = n;
    w.blocksize = blocksize;
    w.scales.absmax = absmax;
    return w;
  }
};

Quantized Quantize(QuantType type, const std::vector<float>& x, int64_t blocksize) {
  const int64_t n = static_cast<int64_t>(x.size());
  Quantized q;
  q.packed.resize(PackedBytes(n));
  q.absmax.resize(NumBlocks(n, blocksize));
  EXPECT_OK(Quantize4bit(type, x, blocksize, absl::MakeSpan(q.packed), absl::MakeSpan(q.absmax)));
  return q;
}

// Caps the kernels' instruction set for its lifetime.
class IsaGuard {
 public:
  explicit IsaGuard(CpuIsa max) : previous_(LimitIsaForTesting(max)) {}
  ~IsaGuard() { LimitIsaForTesting(previous_); }

 private:
  CpuIsa previous_;
};

// The instruction sets this CPU can run, scalar first.
std::vector<CpuIsa> AvailableIsas() {
  std::vector<CpuIsa> isas;
  for (CpuIsa isa : {CpuIsa::kScalar, CpuIsa::kAvx2, CpuIsa::kAvx512}) {
    if (isa <= DetectedIsa()) isas.push_back(isa);
  }
  return isas;
}

TEST(Quant4bitTest, RejectsBadBlocksizes) {
  std::vector<float> x(128, 1.0f);
  std::vector<uint8_t> packed(64);
  for (int64_t bs : {0, -64, 16, 48, 100, 8192}) {
    std::vector<float> absmax(static_cast<size_t>(bs > 0 ? NumBlocks(128, bs) : 1));
    EXPECT_THAT(Quantize4bit(QuantType::kNF4, x, bs, absl::MakeSpan(packed), absl::MakeSpan(absmax)),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("power of two")))
        << bs;
  }
  EXPECT_OK(CheckBlocksize(32));
  EXPECT_OK(CheckBlocksize(4096));
}

TEST(Quant4bitTest, RejectsEmptyAndMismatchedBuffers) {
  std::vector<float> empty;
  std::vector<uint8_t> packed(5);
  std::vector<float> absmax(1);
  EXPECT_THAT(Quantize4bit(QuantType::kNF4, empty, 64, {}, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty")));
  std::vector<float> x(11, 0.5f);
  EXPECT_THAT(Quantize4bit(QuantType::kNF4, x, 64, absl::MakeSpan(packed), absl::MakeSpan(absmax)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("expected (n+1)/2 = 6")));
  std::vector<uint8_t> packed6(6);
  std::vector<float> absmax2(2);
  EXPECT_THAT(Quantize4bit(QuantType::kNF4, x, 64, absl::MakeSpan(packed6), absl::MakeSpan(absmax2)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("absmax has 2")));

  Quantized q = Quantize(QuantType::kNF4, x, 64);
  Packed4bitView w = q.View(QuantType::kNF4, 11, 64);
  std::vector<float> out(10);
  EXPECT_THAT(Dequantize4bit(w, 0, 11, absl::MakeSpan(out)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("output has 10")));
  EXPECT_THAT(Dequantize4bit(w, 5, 10, absl::MakeSpan(out)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("outside")));
  w.numel = 13;  // needs 7 packed bytes
  EXPECT_THAT(Dequantize4bit(w, 0, 0, absl::Span<float>()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("packed data has 6 bytes")));
  w = q.View(QuantType::kNF4, 11, 64);
  std::vector<uint8_t> codes(1);
  std::vector<float> nested(2);
  w.scales.codes = codes;
  w.scales.nested_absmax = nested;
  w.scales.nested_code = absl::MakeConstSpan(kDynamicMapSigned, 256);
  EXPECT_THAT(w.Validate(), StatusIs(absl::StatusCode::kInvalidArgument,
                                     HasSubstr("nested_absmax has 2 values, expected 1")));
}

TEST(Quant4bitTest, Avx2MatchesScalarBitForBit) {
  if (DetectedIsa() < CpuIsa::kAvx2) GTEST_SKIP() << "no AVX2 on this CPU";
  for (QuantType type : {QuantType::kNF4, QuantType::kFP4}) {
    for (int64_t bs : {32, 64, 256}) {
      const int64_t n = 7 * bs + 21;
      std::vector<float> x = RandomNormal(n, 7);
      x[3] = 0.0f;
      x[5] = -0.0f;
      x[9] = std::nanf("");
      Quantized a = Quantize(type, x, bs);
      std::vector<float> da(n), ds(n);
      std::vector<uint16_t> ha(n), hs(n);
      ASSERT_OK(Dequantize4bit(a.View(type, n, bs), 0, n, absl::MakeSpan(da)));
      ASSERT_OK(Dequantize4bit(a.View(type, n, bs), 0, n, absl::MakeSpan(ha)));
      IsaGuard scalar(CpuIsa::kScalar);
      ASSERT_EQ(ActiveIsa(), CpuIsa::kScalar);
      Quantized s = Quantize(type, x, bs);
      ASSERT_OK(Dequantize4bit(s.View(type, n, bs), 0, n, absl::MakeSpan(ds)));
      ASSERT_OK(Dequantize4bit(s.View(type, n, bs), 0, n, absl::MakeSpan(hs)));
      EXPECT_EQ(a.packed, s.packed);
      EXPECT_EQ(std::memcmp(a.absmax.data(), s.absmax.data(), a.absmax.size() * 4), 0);
      EXPECT_EQ(std::memcmp(da.data(), ds.data(), n * 4), 0);
      EXPECT_EQ(ha, hs);
    }
  }
}

TEST(Quant4bitTest, RangeDequantEqualsSliceOfFull) {
  const int64_t n = 1001, bs = 32;
  std::vector<float> x = RandomNormal(n, 3);
  Quantized q = Quantize(QuantType::kNF4, x, bs);
  Packed4bitView w = q.View(QuantType::kNF4, n, bs);
  std::vector<float> full(n);
  ASSERT_OK(Dequantize4bit(w, 0, n, absl::MakeSpan(full)));
  for (int64_t begin : {0, 1, 31, 33, 500}) {
    for (int64_t count : {0, 1, 2, 17, 64, 500}) {
      if (begin + count > n) continue;
      std::vector<float> part(count);
      ASSERT_OK(Dequantize4bit(w, begin, count, absl::MakeSpan(part)));
      for (int64_t i = 0; i < count; ++i) ASSERT_EQ(part[i], full[begin + i]) << begin << "+" << i;
    }
  }
}

TEST(Quant4bitTest, RoundTripErrorIsBoundedByHalfTheLargestCodeGap) {
  const int64_t n = 64 * 50;
  std::vector<float> x = RandomNormal(n, 11);
  Quantized q = Quantize(QuantType::kNF4, x, 64);
  std::vector<float> d(n);
  ASSERT_OK(Dequantize4bit(q.View(QuantType::kNF4, n, 64), 0, n, absl::MakeSpan(d)));
  for (int64_t i = 0; i < n; ++i) {
    // Largest NF4 gap is -0.6962 - (-1) = 0.3038: error <= 0.1519 * absmax (+ rounding).
    EXPECT_LE(std::fabs(d[i] - x[i]), 0.1520f * q.absmax[i / 64] + 1e-6f) << i;
  }
}

TEST(Blockwise8bitTest, DynamicMapEndpointsAndSearch) {
  EXPECT_EQ(kDynamicMapSigned[127], 0.0f);
  EXPECT_EQ(kDynamicMapSigned[255], 1.0f);
  EXPECT_FLOAT_EQ(kDynamicMapSigned[0], -0.99296875f);
  for (int i = 1; i < 256; ++i) EXPECT_LT(kDynamicMapSigned[i - 1], kDynamicMapSigned[i]);
  EXPECT_EQ(QuantizeDynamic8bit(kDynamicMapSigned, 0.0f), 127);
  EXPECT_EQ(QuantizeDynamic8bit(kDynamicMapSigned, 1.0f), 255);
  EXPECT_EQ(QuantizeDynamic8bit(kDynamicMapSigned, -1.0f), 0);
  EXPECT_EQ(QuantizeDynamic8bit(kDynamicMapSigned, std::nanf("")), 0);
  for (int i = 0; i < 256; ++i) EXPECT_EQ(QuantizeDynamic8bit(kDynamicMapSigned, kDynamicMapSigned[i]), i);
}

TEST(Blockwise8bitTest, RejectsBadArguments) {
  std::vector<float> x(10, 1.0f), absmax(1), code(255);
  std::vector<uint8_t> q(10);
  EXPECT_THAT(QuantizeBlockwise8bit(x, 256, code, absl::MakeSpan(q), absl::MakeSpan(absmax)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("expected 256")));
  EXPECT_THAT(QuantizeBlockwise8bit(x, 100, absl::MakeConstSpan(kDynamicMapSigned, 256),
                                    absl::MakeSpan(q), absl::MakeSpan(absmax)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("power of two")));
  EXPECT_THAT(DoubleQuantizeAbsmax({}, 256, absl::MakeConstSpan(kDynamicMapSigned, 256), {}, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no absmax")));
}

// y = x W^T in double from the dequantized weight.
std::vector<double> ReferenceGemm(const Packed4bitView& w, int64_t out, int64_t in,
                                  const std::vector<float>& x, int64_t batch,
                                  const std::vector<float>& bias) {
  std::vector<float> wd(out * in);
  EXPECT_OK(Dequantize4bit(w, 0, out * in, absl::MakeSpan(wd)));
  std::vector<double> y(batch * out);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t o = 0; o < out; ++o) {
      double acc = bias.empty() ? 0.0 : bias[o];
      for (int64_t i = 0; i < in; ++i) acc += double(wd[o * in + i]) * x[b * in + i];
      y[b * out + o] = acc;
    }
  return y;
}

void CheckGemm(QuantType type, int64_t out, int64_t in, int64_t bs, int64_t batch, bool nested,
               bool with_bias) {
  std::vector<float> wf = RandomNormal(out * in, 5);
  Quantized q = Quantize(type, wf, bs);
  Packed4bitView w = q.View(type, out * in, bs);
  std::vector<uint8_t> codes(q.absmax.size());
  std::vector<float> nested_absmax(NumBlocks(q.absmax.size(), kNestedBlocksize));
  if (nested) {
    auto offset = DoubleQuantizeAbsmax(q.absmax, kNestedBlocksize,
                                       absl::MakeConstSpan(kDynamicMapSigned, 256),
                                       absl::MakeSpan(codes), absl::MakeSpan(nested_absmax));
    ASSERT_OK(offset.status());
    w.scales = {};
    w.scales.codes = codes;
    w.scales.nested_absmax = nested_absmax;
    w.scales.nested_code = absl::MakeConstSpan(kDynamicMapSigned, 256);
    w.scales.offset = *offset;
  }
  std::vector<float> x = RandomNormal(batch * in, 9);
  std::vector<float> bias = with_bias ? RandomNormal(out, 13) : std::vector<float>();
  std::vector<float> y(batch * out);
  ASSERT_OK(Gemm4bit(w, out, in, x, batch, bias, absl::MakeSpan(y)));
  std::vector<double> want = ReferenceGemm(w, out, in, x, batch, bias);
  double scale = 0.0;
  for (double v : want) scale = std::max(scale, std::fabs(v));
  for (size_t i = 0; i < y.size(); ++i) {
    ASSERT_NEAR(y[i], want[i], 1e-5 * std::max(1.0, scale))
        << "out=" << out << " in=" << in << " bs=" << bs << " batch=" << batch << " i=" << i;
  }
}

TEST(Gemm4bitTest, MatchesDequantizedReference) {
  for (CpuIsa isa : AvailableIsas()) {
    SCOPED_TRACE(CpuIsaName(isa));
    IsaGuard guard(isa);
    ASSERT_EQ(ActiveIsa(), isa);
    for (int64_t batch : {1, 2, 3, 4, 5, 6, 7, 8, 9, 17}) {
      CheckGemm(QuantType::kNF4, 67, 256, 64, batch, false, batch % 2 == 1);
    }
    CheckGemm(QuantType::kNF4, 9, 96, 32, 1, false, false);   // single groups per block
    CheckGemm(QuantType::kNF4, 9, 384, 128, 1, true, true);   // 4 groups a block, double quant
    CheckGemm(QuantType::kNF4, 33, 512, 32, 3, true, true);
    CheckGemm(QuantType::kFP4, 20, 128, 128, 2, false, false);
    CheckGemm(QuantType::kNF4, 13, 101, 32, 3, false, true);  // in % blocksize != 0, odd in
    CheckGemm(QuantType::kNF4, 7, 33, 64, 1, true, false);    // rows straddle blocks
    CheckGemm(QuantType::kNF4, 5, 4096 + 192, 64, 1, true, true);   // long rows
    CheckGemm(QuantType::kNF4, 6, 4096 + 192, 64, 8, false, true);
    CheckGemm(QuantType::kFP4, 3, 8192, 4096, 2, false, true);
  }
}

// The AVX-512 kernel on its own, so that a CPU without it shows a skip rather than a pass:
// row blocks of 4 and 2 with remainders, scale windows crossing a nested group of 256.
TEST(Gemm4bitTest, Avx512KernelMatchesReference) {
  if (DetectedIsa() < CpuIsa::kAvx512) GTEST_SKIP() << "no AVX-512 on this CPU (or capped)";
  IsaGuard guard(CpuIsa::kAvx512);
  for (int64_t batch : {1, 2, 3, 8}) {
    CheckGemm(QuantType::kNF4, 7, 4096 + 192, 64, batch, true, true);
    CheckGemm(QuantType::kFP4, 11, 1024, 32, batch, true, false);
  }
}

// With a one-hot x every product but one is an exact zero, so y must equal the
// dequantized weight's column bit for bit: checks the nibble order, the x packing and
// every scale (including a nested blocksize that is not a power of two) exactly. Four
// threads over 70 rows also cover chunk starts and partial row blocks.
TEST(Gemm4bitTest, OneHotInputSelectsDequantizedColumnsBitForBit) {
  const int64_t out = 70, in = 4096, bs = 64, batch = 3;
  const int64_t hot[batch] = {0, 1, in - 33};
  std::vector<float> wf = RandomNormal(out * in, 21);
  Quantized q = Quantize(QuantType::kNF4, wf, bs);
  const int64_t blocks = static_cast<int64_t>(q.absmax.size());
  std::mt19937 gen(4);
  std::vector<uint8_t> codes(blocks);
  for (auto& c : codes) c = static_cast<uint8_t>(gen() % 256);
  std::vector<float> nested_absmax(blocks);  // enough for any nested blocksize >= 1
  for (auto& v : nested_absmax) v = 0.5f + static_cast<float>(gen() % 1000) / 700.0f;
  std::vector<float> x(batch * in, 0.0f);
  for (int64_t b = 0; b < batch; ++b) x[b * in + hot[b]] = 1.0f;
  const int threads = NumThreads();
  SetNumThreads(4);
  for (int64_t nested_bs : {int64_t{0}, kNestedBlocksize, int64_t{96}}) {
    Packed4bitView w = q.View(QuantType::kNF4, out * in, bs);
    if (nested_bs > 0) {
      w.scales = {};
      w.scales.codes = codes;
      w.scales.nested_blocksize = nested_bs;
      w.scales.nested_absmax = absl::MakeConstSpan(nested_absmax).subspan(0, NumBlocks(blocks, nested_bs));
      w.scales.nested_code = absl::MakeConstSpan(kDynamicMapSigned, 256);
      w.scales.offset = 0.0371f;
    }
    std::vector<float> wd(out * in);
    ASSERT_OK(Dequantize4bit(w, 0, out * in, absl::MakeSpan(wd)));
    for (CpuIsa isa : AvailableIsas()) {
      SCOPED_TRACE(::testing::Message() << CpuIsaName(isa) << " nested blocksize " << nested_bs);
      IsaGuard guard(isa);
      std::vector<float> y(batch * out, -1.0f);
      ASSERT_OK(Gemm4bit(w, out, in, x, batch, {}, absl::MakeSpan(y)));
      for (int64_t b = 0; b < batch; ++b) {
        for (int64_t o = 0; o < out; ++o) {
          ASSERT_EQ(y[b * out + o], wd[o * in + hot[b]]) << "row " << o << " batch row " << b;
        }
      }
    }
  }
  SetNumThreads(threads);
}

TEST(Gemm4bitTest, RejectsShapeMismatch) {
  std::vector<float> wf = RandomNormal(64 * 4, 1);
  Quantized q = Quantize(QuantType::kNF4, wf, 64);
  Packed4bitView w = q.View(QuantType::kNF4, 256, 64);
  std::vector<float> x(64), y(4), bad_bias(3);
  EXPECT_THAT(Gemm4bit(w, 4, 65, x, 1, {}, absl::MakeSpan(y)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("does not match")));
  EXPECT_THAT(Gemm4bit(w, 4, 64, x, 2, {}, absl::MakeSpan(y)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("input has 64")));
  EXPECT_THAT(Gemm4bit(w, 4, 64, x, 1, bad_bias, absl::MakeSpan(y)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bias has 3")));
  EXPECT_OK(Gemm4bit(w, 4, 64, x, 1, {}, absl::MakeSpan(y)));
}

TEST(ParallelTest, CoversEveryIndexOnceAndNests) {
  const int saved = NumThreads();
  for (int threads : {1, 2, 4}) {
    SetNumThreads(threads);
    std::vector<std::atomic<int>> hits(10007);
    ParallelFor(10007, 10, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) hits[i].fetch_add(1);
      ParallelFor(3, 1, [&](int64_t, int64_t) {});  // nested: runs inline
    });
    for (auto& h : hits) ASSERT_EQ(h.load(), 1);
  }
  SetNumThreads(saved);
}

// Jobs whose helpers block right away (helpers_linger = false) alternate with lingering
// ones: every job still covers its range once, so helpers asleep on the condition variable
// are woken for the next job.
TEST(ParallelTest, HelpersThatDoNotLingerStillTakeTheNextJobs) {
  const int saved = NumThreads();
  SetNumThreads(2);
  for (int round = 0; round < 200; ++round) {
    const bool linger = round % 3 == 0;
    std::vector<std::atomic<int>> hits(257);
    std::atomic<int> chunks{0};
    ParallelFor(
        257, 1,
        [&](int64_t b, int64_t e) {
          chunks.fetch_add(1);
          for (int64_t i = b; i < e; ++i) hits[i].fetch_add(1);
        },
        linger);
    for (auto& h : hits) ASSERT_EQ(h.load(), 1) << "round " << round;
    ASSERT_GT(chunks.load(), 1) << "round " << round;  // split into chunks, not run inline
  }
  SetNumThreads(saved);
}

TEST(ParallelTest, ConcurrentCallersGetCorrectResults) {
  const int64_t n = 64 * 4096 + 5;
  const std::vector<float> x = RandomNormal(n, 21);
  const Quantized q = Quantize(QuantType::kNF4, x, 64);
  const Packed4bitView w = q.View(QuantType::kNF4, n, 64);
  std::vector<float> want(n);
  ASSERT_OK(Dequantize4bit(w, 0, n, absl::MakeSpan(want)));
  std::vector<std::vector<float>> got(4, std::vector<float>(n));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int rep = 0; rep < 5; ++rep) EXPECT_OK(Dequantize4bit(w, 0, n, absl::MakeSpan(got[t])));
    });
  }
  for (auto& th : threads) th.join();
  for (const auto& g : got) EXPECT_EQ(std::memcmp(g.data(), want.data(), n * 4), 0);
}

}  // namespace
}  // namespace qlorad::kernels

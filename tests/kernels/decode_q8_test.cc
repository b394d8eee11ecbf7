// kernels/gemm4bit_q8.h against double-precision loops written here (not qlorad's scalar
// kernel): the integer path must equal the exact product of the values it stands for
// (the int8 code book times each block's absmax, the int8 activations times their group
// scale), and stay within the error bound gemm4bit_q8.h states of the fp32 4-bit kernel
// (gemm4bit.h). Every instruction set this CPU has, NF4 and FP4, batch 1..6.
#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/blockwise8bit.h"
#include "kernels/cpu_isa.h"
#include "kernels/gemm4bit.h"
#include "kernels/gemm4bit_q8.h"
#include "kernels/quant4bit.h"
#include "kernels/quant_tables.h"
#include "tests/testing/cpu_isas.h"

namespace qlorad::kernels {
namespace {

using ::qlorad::testing::IsasOfThisCpu;

std::vector<float> Random(size_t n, uint32_t seed, float stddev) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, stddev);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

struct Quantized {
  std::vector<uint8_t> packed;
  std::vector<float> absmax;
  Packed4bitView view;
};

Quantized Quantize(QuantType type, const std::vector<float>& w, int64_t blocksize) {
  Quantized q;
  q.packed.resize(PackedBytes(static_cast<int64_t>(w.size())));
  q.absmax.resize(NumBlocks(static_cast<int64_t>(w.size()), blocksize));
  EXPECT_TRUE(Quantize4bit(type, w, blocksize, absl::MakeSpan(q.packed), absl::MakeSpan(q.absmax)).ok());
  q.view.type = type;
  q.view.packed = q.packed;
  q.view.numel = static_cast<int64_t>(w.size());
  q.view.blocksize = blocksize;
  q.view.scales.absmax = q.absmax;
  return q;
}

// Element i of W as the 8-bit path sees it: round(127 · code) / 127 · absmax.
double Int8Weight(const Quantized& q, int64_t i) {
  const uint8_t byte = q.packed[i / 2];
  const int nibble = i % 2 == 0 ? byte >> 4 : byte & 15;
  const float* code = q.view.type == QuantType::kNF4 ? kNf4Code : kFp4Code;
  return std::round(127.0 * code[nibble]) / 127.0 * q.absmax[i / q.view.blocksize];
}

// x as the 8-bit path sees it, recomputed here: nearbyint(x · (127 / max|x|)) · max|x| / 127 per 32 values.
std::vector<double> Int8Activations(const std::vector<float>& x) {
  std::vector<double> out(x.size());
  for (size_t g = 0; g < x.size(); g += 32) {
    double absmax = 0;
    for (size_t i = g; i < g + 32; ++i) absmax = std::max(absmax, std::fabs(static_cast<double>(x[i])));
    for (size_t i = g; i < g + 32; ++i)
      out[i] = absmax > 0 ? std::nearbyint(x[i] * (127.0f / static_cast<float>(absmax))) * (absmax / 127.0) : 0.0;
  }
  return out;
}

struct Case {
  QuantType type;
  int64_t out, in, blocksize;
  int batch;
};

std::vector<float> RunQ8(const Quantized& q, const std::vector<float>& x, const std::vector<float>& bias,
                         const Case& c) {
  std::vector<int8_t> values(x.size());
  std::vector<float> scales(Q8ScaleFloats(c.batch, c.in)), y(c.batch * c.out, -1.0f);
  const Q8Input input = QuantizeQ8Input(x.data(), c.batch, c.in, values.data(), scales.data());
  // Two row ranges, as the fused decoder's threads call it.
  Gemm4bitQ8Rows(q.view, input, bias.data(), y.data(), c.out, 0, c.out / 2);
  Gemm4bitQ8Rows(q.view, input, bias.data(), y.data(), c.out, c.out / 2, c.out);
  return y;
}

std::vector<Case> Cases() {
  std::vector<Case> cases;
  for (QuantType type : {QuantType::kNF4, QuantType::kFP4})
    for (int batch : {1, 2, 3, 4, 5, 6}) {
      cases.push_back({type, 13, 768, 64, batch});
      cases.push_back({type, 7, 128, 128, batch});
      cases.push_back({type, 9, 192, 64, batch});  // an odd number of 64-value chunks
      cases.push_back({type, 11, 1088, 64, batch});  // long rows, read one at a time (17 chunks)
      cases.push_back({type, 5, 1152, 128, batch});  // long rows, 18 chunks, blocks of 128
    }
  return cases;
}

TEST(DecodeQ8Test, EqualsTheExactProductOfTheValuesItStandsFor) {
  for (CpuIsa isa : IsasOfThisCpu()) {
    const CpuIsa previous = LimitIsaForTesting(isa);
    for (const Case& c : Cases()) {
      SCOPED_TRACE(std::string(CpuIsaName(isa)) + " batch " + std::to_string(c.batch) + " in " + std::to_string(c.in) +
                   (c.type == QuantType::kNF4 ? " nf4" : " fp4"));
      const Quantized q = Quantize(c.type, Random(c.out * c.in, 1 + c.batch, 0.05f), c.blocksize);
      const std::vector<float> x = Random(c.batch * c.in, 100 + c.batch, 1.0f), bias = Random(c.out, 7, 0.1f);
      const std::vector<float> y = RunQ8(q, x, bias, c);
      for (int b = 0; b < c.batch; ++b) {
        const std::vector<double> xq = Int8Activations(std::vector<float>(x.begin() + b * c.in, x.begin() + (b + 1) * c.in));
        for (int64_t o = 0; o < c.out; ++o) {
          double expected = bias[o], magnitude = std::fabs(bias[o]);
          for (int64_t i = 0; i < c.in; ++i) {
            expected += Int8Weight(q, o * c.in + i) * xq[i];
            magnitude += std::fabs(Int8Weight(q, o * c.in + i) * xq[i]);
          }
          // fp32 accumulation of exact int32 group sums: a few ulps of the magnitude.
          EXPECT_NEAR(y[b * c.out + o], expected, 1e-6 * magnitude) << "row " << o << ", batch row " << b;
        }
      }
    }
    LimitIsaForTesting(previous);
  }
}

TEST(DecodeQ8Test, StaysWithinTheStatedBoundOfTheFp32Kernel) {
  for (CpuIsa isa : IsasOfThisCpu()) {
    const CpuIsa previous = LimitIsaForTesting(isa);
    for (const Case& c : Cases()) {
      SCOPED_TRACE(std::string(CpuIsaName(isa)) + " batch " + std::to_string(c.batch) + " in " + std::to_string(c.in));
      const Quantized q = Quantize(c.type, Random(c.out * c.in, 3 + c.batch, 0.05f), c.blocksize);
      const std::vector<float> x = Random(c.batch * c.in, 200 + c.batch, 1.0f), bias(c.out, 0.0f);
      std::vector<float> fp32(c.batch * c.out), w(c.out * c.in);
      ASSERT_TRUE(Gemm4bit(q.view, c.out, c.in, x, c.batch, {}, absl::MakeSpan(fp32)).ok());
      ASSERT_TRUE(Dequantize4bit(q.view, 0, q.view.numel, absl::MakeSpan(w)).ok());
      const std::vector<float> y = RunQ8(q, x, bias, c);
      double worst_share = 0;
      for (int b = 0; b < c.batch; ++b)
        for (int64_t o = 0; o < c.out; ++o) {
          // Each weight moves by <= 0.5/127 of its block's absmax, each x by <= 0.5/127 of
          // its group's max|x|: |Δy| <= Σ_i (|x_i| · a_w + (|w_i| + a_w) · a_x) / 254.
          double bound = 0;
          for (int64_t g = 0; g < c.in; g += 32) {
            double x_max = 0;
            for (int64_t i = g; i < g + 32; ++i) x_max = std::max(x_max, std::fabs(double{x[b * c.in + i]}));
            for (int64_t i = g; i < g + 32; ++i) {
              const double a_w = q.absmax[(o * c.in + i) / c.blocksize];
              bound += (std::fabs(x[b * c.in + i]) * a_w + (std::fabs(w[o * c.in + i]) + a_w) * x_max) / 254.0;
            }
          }
          const double diff = std::fabs(double{y[b * c.out + o]} - fp32[b * c.out + o]);
          EXPECT_LE(diff, bound * (1 + 1e-4) + 1e-6) << "row " << o << ", batch row " << b;
          worst_share = std::max(worst_share, diff / bound);
        }
      // The bound is not vacuous: the path does round (a share of it is used), unlike fp32.
      EXPECT_GT(worst_share, 0.001);
    }
    LimitIsaForTesting(previous);
  }
}

TEST(DecodeQ8Test, QuantizedInputLayoutAndRounding) {
  std::vector<float> x(128);
  for (int i = 0; i < 128; ++i) x[i] = static_cast<float>(i % 64) - (i < 64 ? 0.0f : 70.0f);
  std::vector<int8_t> values(128);
  std::vector<float> scales(Q8ScaleFloats(1, 128));
  const Q8Input input = QuantizeQ8Input(x.data(), 1, 128, values.data(), scales.data());
  EXPECT_EQ(input.batch, 1);
  // Per 64-value chunk [s0 ×4, s1 ×4]: group 0 holds 0 .. 31, group 1 32 .. 63, group 3 -38 .. -7.
  for (int i = 0; i < 4; ++i) {
    EXPECT_FLOAT_EQ(scales[i], 31.0f / 127.0f);
    EXPECT_FLOAT_EQ(scales[4 + i], 63.0f / 127.0f);
    EXPECT_FLOAT_EQ(scales[12 + i], 38.0f / 127.0f);
  }
  // Chunk 0: even columns 0, 2, .. 62 first, then odd ones 1, 3, ...
  EXPECT_EQ(values[0], 0);
  EXPECT_EQ(values[1], static_cast<int8_t>(std::nearbyint(2 * (127.0f / 31.0f))));
  EXPECT_EQ(values[32], static_cast<int8_t>(std::nearbyint(1 * (127.0f / 31.0f))));
  EXPECT_EQ(values[16], static_cast<int8_t>(std::nearbyint(32 * (127.0f / 63.0f))));  // column 32: group 1
}

// The fused decoder hands the kernels plain fp32 scales decoded from bitsandbytes' double
// quantization (AbsmaxView::Get per block): the result must be bit-identical to the
// kernels reading the double-quant form itself, on every body (the plain-scale fast path
// and the general one), for blocks of 64 and of 128.
TEST(DecodeQ8Test, DecodedPlainScalesGiveBitIdenticalResults) {
  for (CpuIsa isa : IsasOfThisCpu()) {
    const CpuIsa previous = LimitIsaForTesting(isa);
    for (int64_t blocksize : {64, 128}) {
      for (int batch : {1, 2, 5}) {
        SCOPED_TRACE(std::string(CpuIsaName(isa)) + " blocksize " + std::to_string(blocksize) + " batch " +
                     std::to_string(batch));
        const Case c{QuantType::kNF4, 11, 320, blocksize, batch};
        Quantized q = Quantize(c.type, Random(c.out * c.in, 40 + batch, 0.05f), blocksize);
        std::vector<uint8_t> codes(q.absmax.size());
        std::vector<float> nested(NumBlocks(static_cast<int64_t>(q.absmax.size()), 256));
        const absl::StatusOr<float> offset =
            DoubleQuantizeAbsmax(q.absmax, 256, absl::MakeConstSpan(kDynamicMapSigned, 256), absl::MakeSpan(codes),
                                 absl::MakeSpan(nested));
        ASSERT_TRUE(offset.ok()) << offset.status();
        Quantized double_quant = q;
        double_quant.view.scales = AbsmaxView{};
        double_quant.view.scales.codes = codes;
        double_quant.view.scales.nested_absmax = nested;
        double_quant.view.scales.nested_code = absl::MakeConstSpan(kDynamicMapSigned, 256);
        double_quant.view.scales.offset = *offset;
        std::vector<float> decoded(codes.size());
        for (size_t b = 0; b < decoded.size(); ++b) decoded[b] = double_quant.view.scales.Get(static_cast<int64_t>(b));
        Quantized plain = q;
        plain.view.scales = AbsmaxView{};
        plain.view.scales.absmax = decoded;
        const std::vector<float> x = Random(batch * c.in, 300 + batch, 1.0f), bias = Random(c.out, 8, 0.1f);
        const std::vector<float> from_codes = RunQ8(double_quant, x, bias, c), from_plain = RunQ8(plain, x, bias, c);
        for (size_t i = 0; i < from_codes.size(); ++i) ASSERT_EQ(from_codes[i], from_plain[i]) << "output " << i;
      }
    }
    LimitIsaForTesting(previous);
  }
}

TEST(DecodeQ8Test, RoundsHalvesToEven) {
  // max|x| = 127 in each group, so q = x; columns 2, 4, 6, 8 hold the halves.
  std::vector<float> x(64, 0.0f);
  x[0] = x[32] = 127.0f;
  x[2] = 2.5f;
  x[4] = -3.5f;
  x[6] = 0.5f;
  x[8] = -126.5f;
  std::vector<int8_t> values(64);
  std::vector<float> scales(Q8ScaleFloats(1, 64));
  QuantizeQ8Input(x.data(), 1, 64, values.data(), scales.data());
  EXPECT_EQ(values[0], 127);
  EXPECT_EQ(values[1], 2);
  EXPECT_EQ(values[2], -4);
  EXPECT_EQ(values[3], 0);
  EXPECT_EQ(values[4], -126);
}

}  // namespace
}  // namespace qlorad::kernels

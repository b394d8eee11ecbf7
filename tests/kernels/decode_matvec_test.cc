// kernels/matvec.h and kernels/decode_ops.h against plain double-precision loops written
// here (not qlorad's scalar kernels): every weight format, every instruction set this CPU
// has, batch 1..8, row lengths with and without a vector tail, row strides > in.
#include <algorithm>
#include <cmath>
#include <random>
#include <tuple>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/bf16.h"
#include "kernels/cpu_isa.h"
#include "kernels/decode_ops.h"
#include "kernels/matvec.h"
#include "tests/testing/cpu_isas.h"

namespace qlorad::kernels {
namespace {

using ::qlorad::testing::IsasOfThisCpu;

std::vector<float> Random(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

// The matrix in `format` and the fp32 values it stands for.
struct Stored {
  WeightMatrix matrix;
  std::vector<double> values;  // [rows, in]
  std::vector<float> f32, scale;
  std::vector<uint16_t> bf16;
  std::vector<int8_t> int8;
};

Stored Store(WeightFormat format, int64_t rows, int64_t in, int64_t stride, uint32_t seed) {
  Stored s;
  s.f32 = Random(rows * stride, seed);
  s.values.resize(rows * in);
  s.matrix = WeightMatrix{format, nullptr, in, stride, nullptr};
  if (format == WeightFormat::kBf16) {
    s.bf16.resize(rows * stride);
    for (size_t i = 0; i < s.bf16.size(); ++i) s.bf16[i] = FloatToBf16(s.f32[i]);
    s.matrix.data = s.bf16.data();
  } else if (format == WeightFormat::kInt8RowScaled) {
    s.int8.resize(rows * stride);
    s.scale = Random(rows, seed + 1);
    std::mt19937 rng(seed + 2);
    std::uniform_int_distribution<int> code(-127, 127);
    for (int8_t& c : s.int8) c = static_cast<int8_t>(code(rng));
    s.matrix.data = s.int8.data();
    s.matrix.row_scale = s.scale.data();
  } else {
    s.matrix.data = s.f32.data();
  }
  for (int64_t o = 0; o < rows; ++o)
    for (int64_t i = 0; i < in; ++i) {
      const int64_t at = o * stride + i;
      s.values[o * in + i] = format == WeightFormat::kBf16 ? Bf16ToFloat(s.bf16[at])
                             : format == WeightFormat::kInt8RowScaled
                                 ? static_cast<double>(s.scale[o]) * s.int8[at]
                                 : s.f32[at];
    }
  return s;
}

TEST(DecodeMatvecTest, EveryFormatIsaBatchAndShapeEqualsDoubleLoops) {
  const int64_t rows = 37;
  for (WeightFormat format : {WeightFormat::kF32, WeightFormat::kBf16, WeightFormat::kInt8RowScaled}) {
    for (int64_t in : {24, 64, 100, 768}) {
      const Stored w = Store(format, rows, in, in + 3, 7 + in);
      const std::vector<float> bias = Random(rows, 99);
      for (CpuIsa isa : IsasOfThisCpu()) {
        const CpuIsa previous = LimitIsaForTesting(isa);
        for (int batch = 1; batch <= kMatvecMaxBatch; ++batch) {
          const int64_t x_stride = in + 5, y_stride = rows + 2;
          const std::vector<float> x = Random(batch * x_stride, 1000 + batch);
          std::vector<float> y(batch * y_stride, NAN);
          // Two calls over a split row range, as the decoder's ParallelFor chunks do.
          MatvecRows(w.matrix, x.data(), x_stride, batch, bias.data(), y.data(), y_stride, 0, 11);
          MatvecRows(w.matrix, x.data(), x_stride, batch, bias.data(), y.data(), y_stride, 11, rows);
          for (int b = 0; b < batch; ++b)
            for (int64_t o = 0; o < rows; ++o) {
              double want = bias[o], magnitude = std::fabs(bias[o]);
              for (int64_t i = 0; i < in; ++i) {
                want += w.values[o * in + i] * x[b * x_stride + i];
                magnitude += std::fabs(w.values[o * in + i] * x[b * x_stride + i]);
              }
              ASSERT_NEAR(y[b * y_stride + o], want, 1e-5 * magnitude + 1e-6)
                  << "format " << static_cast<int>(format) << " in " << in << " isa " << CpuIsaName(isa)
                  << " batch " << batch << " row " << o;
            }
        }
        LimitIsaForTesting(previous);
      }
    }
  }
}

// out = Σ_r p[r]·m[r, :] over every weight format (the SGMV kernel's Bᵀ pass reads fp32 and
// bf16): column counts below, at and past one 64-column pass and with vector tails, odd row
// counts, row strides > cols and = cols (the last row's tail then ends the allocation).
TEST(DecodeMatvecTest, WeightedRowSumOfEveryFormatEqualsADoubleLoop) {
  for (WeightFormat format : {WeightFormat::kF32, WeightFormat::kBf16, WeightFormat::kInt8RowScaled}) {
    for (auto [rows, cols, pad] : {std::tuple<int64_t, int64_t, int64_t>{16, 53, 3}, {16, 53, 0}, {1, 8, 0}, {7, 64, 3},
                                   {16, 768, 0}, {4, 131, 0}, {5, 131, 2}}) {
      const Stored m = Store(format, rows, cols, cols + pad, 31 + cols);
      const std::vector<float> p = Random(rows, 5);
      for (CpuIsa isa : IsasOfThisCpu()) {
        const CpuIsa previous = LimitIsaForTesting(isa);
        std::vector<float> out(cols + 1, NAN);
        out[cols] = 123.0f;  // must stay: the sum writes cols values only
        WeightedRowSum(m.matrix, rows, p.data(), out.data());
        LimitIsaForTesting(previous);
        for (int64_t c = 0; c < cols; ++c) {
          double want = 0, magnitude = 0;
          for (int64_t r = 0; r < rows; ++r) {
            want += p[r] * m.values[r * cols + c];
            magnitude += std::fabs(p[r] * m.values[r * cols + c]);
          }
          ASSERT_NEAR(out[c], want, 1e-5 * magnitude + 1e-6)
              << "format " << static_cast<int>(format) << " rows " << rows << " cols " << cols << " isa "
              << CpuIsaName(isa) << " column " << c;
        }
        EXPECT_EQ(out[cols], 123.0f);
      }
    }
  }
}

TEST(DecodeMatvecTest, AttentionEqualsSoftmaxWeightedValues) {
  // Head sizes below, at and above one 64-column pass, odd lengths (a row left over), a
  // prefill-long row (several softmax vectors and a tail).
  for (auto [length, d, stride] : {std::tuple<int64_t, int64_t, int64_t>{45, 24, 40}, {45, 64, 64}, {8, 64, 64},
                                   {37, 100, 128}, {1, 128, 128}, {517, 64, 64}}) {
    const std::vector<float> q = Random(d, 1), keys = Random(length * stride, 2), values = Random(length * stride, 3);
    const float scale = 0.2f;
    std::vector<double> score(length);
    double max_score = -INFINITY, total = 0;
    for (int64_t s = 0; s < length; ++s) {
      double dot = 0;
      for (int64_t i = 0; i < d; ++i) dot += static_cast<double>(q[i]) * keys[s * stride + i];
      score[s] = dot * scale;
      max_score = std::max(max_score, score[s]);
    }
    for (double& s : score) total += (s = std::exp(s - max_score));
    for (CpuIsa isa : IsasOfThisCpu()) {
      const CpuIsa previous = LimitIsaForTesting(isa);
      std::vector<float> scratch(length), out(d);
      AttendOneQuery(q.data(), keys.data(), values.data(), length, d, stride, scale, scratch.data(), out.data());
      for (int64_t s = 0; s < length; ++s)  // the softmax it leaves in the scratch
        EXPECT_NEAR(scratch[s], score[s] / total, 1e-6) << CpuIsaName(isa) << " length " << length << " s " << s;
      for (int64_t c = 0; c < d; ++c) {
        double want = 0;
        for (int64_t s = 0; s < length; ++s) want += score[s] / total * values[s * stride + c];
        EXPECT_NEAR(out[c], want, 1e-5) << CpuIsaName(isa) << " d " << d << " length " << length << " column " << c;
      }
      LimitIsaForTesting(previous);
    }
  }
}

TEST(DecodeMatvecTest, RmsNormAndSwiGluEqualTheirFormulasOnEveryIsa) {
  for (int64_t n : {7, 40, 2048}) {  // vector tails; a decoder's intermediate width
    std::vector<float> x = Random(n, 4), weight = Random(n, 5), up = Random(n, 6);
    for (int64_t i = 0; i < n; i += 5) x[i] *= 30.0f;  // silu's saturated ends, e^±90 clamped
    x[0] = 0.0f;
    x[n - 1] = -100.0f;
    double mean_square = 0;
    for (float v : x) mean_square += static_cast<double>(v) * v / n;
    for (CpuIsa isa : IsasOfThisCpu()) {
      const CpuIsa previous = LimitIsaForTesting(isa);
      std::vector<float> out(n);
      RmsNorm(x.data(), weight.data(), n, 1e-5f, out.data());
      for (int64_t i = 0; i < n; ++i) {
        const double want = weight[i] * x[i] / std::sqrt(mean_square + 1e-5);
        EXPECT_NEAR(out[i], want, 1e-5 * std::max(1.0, std::abs(want))) << CpuIsaName(isa) << " n " << n << " i " << i;
      }
      std::vector<float> gate = x;
      SwiGluInPlace(gate.data(), up.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        const double want = x[i] / (1 + std::exp(-static_cast<double>(x[i]))) * up[i];
        EXPECT_NEAR(gate[i], want, 1e-6 * std::max(1.0, std::abs(want))) << CpuIsaName(isa) << " n " << n << " x " << x[i];
      }
      LimitIsaForTesting(previous);
    }
  }
}

TEST(DecodeMatvecTest, RopeThroughCosSinEqualsItsFormula) {
  const int64_t heads = 2, d = 20, position = 37;
  const std::vector<float> x = Random(heads * d, 4);
  const std::vector<float> inv_freq = {1.0f, 0.5f, 0.25f, 0.1f, 0.05f, 0.01f, 0.005f, 0.001f, 1e-4f, 1e-5f};
  std::vector<float> through_table = x, cos_sin(d);
  RopeCosSin(inv_freq.data(), d / 2, position, cos_sin.data());
  ApplyRopeCosSin(through_table.data(), heads, d, cos_sin.data());
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < d / 2; ++i) {
      const double angle = static_cast<double>(static_cast<float>(position) * inv_freq[i]);
      const double lo = x[h * d + i], hi = x[h * d + i + d / 2];
      EXPECT_NEAR(through_table[h * d + i], lo * std::cos(angle) - hi * std::sin(angle), 1e-5);
      EXPECT_NEAR(through_table[h * d + i + d / 2], hi * std::cos(angle) + lo * std::sin(angle), 1e-5);
    }
}

}  // namespace
}  // namespace qlorad::kernels

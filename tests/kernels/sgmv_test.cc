// The CPU SGMV kernel against a plain double-precision loop on random inputs:
// segments of different ranks and token counts, rows in any order, y accumulated into;
// factors in fp32 and in bf16 (the loop uses the bf16 values widened, as stored); DoRA's
// per-column rescale with and without a bias.
#include <random>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "kernels/bf16.h"
#include "kernels/cpu_isa.h"
#include "kernels/sgmv.h"
#include "tests/testing/cpu_isas.h"

namespace qlorad::kernels {
namespace {

using ::qlorad::testing::IsasOfThisCpu;

std::vector<float> Random(size_t n, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

// One adapter's factors in the format under test; a and b hold the values the kernel sees.
struct Adapter {
  int64_t rank = 0;
  float scaling = 1.0f;
  std::vector<float> a, b;
  std::vector<uint16_t> a_bf16, b_bf16;

  void RoundToBf16() {
    for (auto [values, bits] : {std::pair{&a, &a_bf16}, std::pair{&b, &b_bf16}}) {
      bits->clear();
      for (float& v : *values) v = Bf16ToFloat(bits->emplace_back(FloatToBf16(v)));
    }
  }
  // Bᵀ [rank, out] copies of b (and of its bf16 bits), for the b_transposed layout.
  void Transpose(int64_t out) {
    for (int64_t j = 0; j < rank; ++j)
      for (int64_t o = 0; o < out; ++o) {
        b_t.push_back(b[o * rank + j]);
        b_t_bf16.push_back(FloatToBf16(b_t.back()));
      }
  }
  const void* A(WeightFormat f) const { return f == WeightFormat::kBf16 ? static_cast<const void*>(a_bf16.data()) : a.data(); }
  const void* B(WeightFormat f, bool transposed) const {
    if (transposed) return f == WeightFormat::kBf16 ? static_cast<const void*>(b_t_bf16.data()) : b_t.data();
    return f == WeightFormat::kBf16 ? static_cast<const void*>(b_bf16.data()) : b.data();
  }

  std::vector<float> b_t;
  std::vector<uint16_t> b_t_bf16;
};

// Decode-sized items (1, 3 and 8 tokens per row: the matrix-vector path, on every instruction
// set this CPU has) and a longer prefill run (12 tokens: the BLAS path), fp32 and bf16 factors,
// B as [out, rank] and as Bᵀ [rank, out].
class SgmvTokensTest : public ::testing::TestWithParam<std::tuple<int64_t, WeightFormat, bool>> {};

TEST_P(SgmvTokensTest, MatchesAPlainLoopOnRandomInputs) {
  std::mt19937 rng(3);
  const auto [tokens, format, transposed] = GetParam();
  const int64_t in = 37, out = 300, rows = 9;  // out: Bᵀ rows long enough to be streamed whole, with a tail
  std::vector<float> x = Random(rows * tokens * in, rng), y = Random(rows * tokens * out, rng);
  std::vector<double> expected(y.begin(), y.end());
  std::vector<Adapter> adapters;
  for (int64_t rank : {1, 5, 16}) {
    Adapter& ad = adapters.emplace_back();
    ad.rank = rank;
    ad.scaling = 0.5f * rank;
    ad.a = Random(rank * in, rng);
    ad.b = Random(out * rank, rng);
    if (format == WeightFormat::kBf16) ad.RoundToBf16();
    ad.Transpose(out);
  }
  // The rank-5 adapter is DoRA-like: its rows are rescaled per column around a bias; the
  // rank-16 one rescaled without a bias.
  const std::vector<float> bias = Random(out, rng);
  std::vector<float> gains = Random(2 * out, rng);
  for (float& g : gains) g = 1.0f + 0.3f * g;
  const float* gain_of[3] = {nullptr, gains.data(), gains.data() + out};
  const float* bias_of[3] = {nullptr, bias.data(), nullptr};
  std::vector<SgmvItem> items;
  for (int64_t row : {4, 0, 7, 2, 8, 5}) {  // rows 1, 3, 6 have no adapter
    const Adapter& ad = adapters[row % 3];
    items.push_back({x.data() + row * tokens * in, y.data() + row * tokens * out, tokens, ad.A(format),
                     ad.B(format, transposed), ad.rank, ad.scaling, format, transposed, gain_of[row % 3],
                     bias_of[row % 3]});
    for (int64_t t = 0; t < tokens; ++t) {
      const float* xr = x.data() + (row * tokens + t) * in;
      for (int64_t o = 0; o < out; ++o) {
        double acc = 0;
        for (int64_t j = 0; j < ad.rank; ++j) {
          double s = 0;
          for (int64_t i = 0; i < in; ++i) s += static_cast<double>(xr[i]) * ad.a[j * in + i];
          acc += s * ad.b[o * ad.rank + j];
        }
        double& e = expected[(row * tokens + t) * out + o];
        e += ad.scaling * acc;
        if (const float* gain = gain_of[row % 3]) {
          const double b = bias_of[row % 3] != nullptr ? bias_of[row % 3][o] : 0.0;
          e = gain[o] * (e - b) + b;
        }
      }
    }
  }
  for (CpuIsa isa : IsasOfThisCpu()) {
    const CpuIsa previous = LimitIsaForTesting(isa);
    std::vector<float> result = y;
    for (SgmvItem& item : items) item.y = result.data() + (item.y - y.data());
    ASSERT_TRUE(SgmvF32(items, in, out).ok());
    LimitIsaForTesting(previous);
    for (size_t i = 0; i < y.size(); ++i)
      EXPECT_NEAR(result[i], expected[i], 1e-3 * (1 + std::abs(expected[i]))) << "isa " << CpuIsaName(isa) << ", " << i;
    for (SgmvItem& item : items) item.y = y.data() + (item.y - result.data());
  }
}

INSTANTIATE_TEST_SUITE_P(DecodeAndPrefill, SgmvTokensTest,
                         ::testing::Combine(::testing::Values(1, 3, 8, 12),
                                            ::testing::Values(WeightFormat::kF32, WeightFormat::kBf16),
                                            ::testing::Bool()),
                         [](const auto& info) {
                           return absl::StrCat(std::get<0>(info.param), "_tokens_",
                                               std::get<1>(info.param) == WeightFormat::kBf16 ? "bf16" : "fp32",
                                               std::get<2>(info.param) ? "_b_transposed" : "");
                         });

TEST(SgmvTest, RefusesBadItems) {
  float v = 0;
  SgmvItem item{&v, &v, 1, &v, nullptr, 1, 1.0f};
  EXPECT_FALSE(SgmvF32({item}, 1, 1).ok());
  item.b = &v;
  item.rank = 0;
  EXPECT_FALSE(SgmvF32({item}, 1, 1).ok());
  item.rank = 1;
  EXPECT_TRUE(SgmvF32({item}, 1, 1).ok());
  EXPECT_FALSE(SgmvF32({item}, 0, 1).ok());
  item.factors = WeightFormat::kInt8RowScaled;
  EXPECT_FALSE(SgmvF32({item}, 1, 1).ok());
}

}  // namespace
}  // namespace qlorad::kernels

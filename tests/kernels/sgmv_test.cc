// The CPU SGMV kernel against a plain double-precision loop on random inputs:
// segments of different ranks and token counts, rows in any order, y accumulated into.
#include <random>
#include <vector>

#include "gtest/gtest.h"
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

// Decode-sized items (1, 3 and 8 tokens per row: the matrix-vector path, on every instruction
// set this CPU has) and a longer prefill run (12 tokens: the BLAS path).
class SgmvTokensTest : public ::testing::TestWithParam<int64_t> {};

TEST_P(SgmvTokensTest, MatchesAPlainLoopOnRandomInputs) {
  std::mt19937 rng(3);
  const int64_t in = 37, out = 53, rows = 9, tokens = GetParam();
  std::vector<float> x = Random(rows * tokens * in, rng), y = Random(rows * tokens * out, rng);
  std::vector<double> expected(y.begin(), y.end());
  struct Adapter {
    int64_t rank;
    float scaling;
    std::vector<float> a, b;
  };
  std::vector<Adapter> adapters;
  for (int64_t rank : {1, 4, 16}) adapters.push_back({rank, 0.5f * rank, Random(rank * in, rng), Random(out * rank, rng)});
  std::vector<SgmvItem> items;
  for (int64_t row : {4, 0, 7, 2, 8, 5}) {  // rows 1, 3, 6 have no adapter
    const Adapter& ad = adapters[row % 3];
    items.push_back({x.data() + row * tokens * in, y.data() + row * tokens * out, tokens, ad.a.data(), ad.b.data(), ad.rank,
                     ad.scaling});
    for (int64_t t = 0; t < tokens; ++t) {
      const float* xr = x.data() + (row * tokens + t) * in;
      for (int64_t o = 0; o < out; ++o) {
        double acc = 0;
        for (int64_t j = 0; j < ad.rank; ++j) {
          double s = 0;
          for (int64_t i = 0; i < in; ++i) s += static_cast<double>(xr[i]) * ad.a[j * in + i];
          acc += s * ad.b[o * ad.rank + j];
        }
        expected[(row * tokens + t) * out + o] += ad.scaling * acc;
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

INSTANTIATE_TEST_SUITE_P(DecodeAndPrefill, SgmvTokensTest, ::testing::Values(1, 3, 8, 12));

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
}

}  // namespace
}  // namespace qlorad::kernels

#include "core/eval/bootstrap.h"

#include <cmath>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/eval/bertscore.h"
#include "core/util/file_util.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

namespace qlorad::eval {
namespace {

using ::testing::HasSubstr;

// n Bernoulli outcomes with success rate ~p from a fixed generator.
std::vector<double> Outcomes(size_t n, double p, uint64_t seed) {
  SplitMix64 rng(seed);
  std::vector<double> v(n);
  for (auto& x : v) x = (rng.Next() >> 11) * (1.0 / 9007199254740992.0) < p ? 1.0 : 0.0;
  return v;
}

TEST(PercentileTest, MatchesNumpyLinearInterpolation) {
  // numpy.percentile([1,2,3,4], 25) == 1.75; 50 -> 2.5; 97.5 -> 3.925
  EXPECT_DOUBLE_EQ(Percentile({4, 1, 3, 2}, 0.25), 1.75);
  EXPECT_DOUBLE_EQ(Percentile({4, 1, 3, 2}, 0.5), 2.5);
  EXPECT_NEAR(Percentile({4, 1, 3, 2}, 0.975), 3.925, 1e-12);
}

TEST(BootstrapTest, ContainsPointEstimateAndIsDeterministicPerSeed) {
  const auto v = Outcomes(300, 0.7, 1);
  ASSERT_OK_AND_ASSIGN(ConfidenceInterval a, BootstrapInterval(v.size(), MeanOf(v)));
  ASSERT_OK_AND_ASSIGN(ConfidenceInterval b, BootstrapInterval(v.size(), MeanOf(v)));
  EXPECT_LE(a.lower, a.point);
  EXPECT_GE(a.upper, a.point);
  EXPECT_LT(a.lower, a.upper);
  EXPECT_EQ(a.lower, b.lower);  // bit-identical with the same seed
  EXPECT_EQ(a.upper, b.upper);
  BootstrapOptions other;
  other.seed = 99;
  ASSERT_OK_AND_ASSIGN(ConfidenceInterval c, BootstrapInterval(v.size(), MeanOf(v), other));
  EXPECT_EQ(c.point, a.point);
  EXPECT_TRUE(c.lower != a.lower || c.upper != a.upper);
  // Normal approximation sanity: half-width ~ 1.96*sqrt(p(1-p)/n) ~ 0.052 for p=0.7, n=300.
  EXPECT_NEAR((a.upper - a.lower) / 2, 1.96 * std::sqrt(a.point * (1 - a.point) / 300), 0.012);
}

TEST(BootstrapTest, NarrowerWithMoreData) {
  const auto small = Outcomes(100, 0.6, 2);
  const auto large = Outcomes(1600, 0.6, 3);
  ASSERT_OK_AND_ASSIGN(ConfidenceInterval s, BootstrapInterval(small.size(), MeanOf(small)));
  ASSERT_OK_AND_ASSIGN(ConfidenceInterval l, BootstrapInterval(large.size(), MeanOf(large)));
  EXPECT_LT(l.upper - l.lower, (s.upper - s.lower) / 2.5);  // ~1/4 expected (sqrt(16))
}

TEST(BootstrapTest, PairedDifferenceSeesARealImprovement) {
  // Adapter right wherever the baseline is, plus 60 more of 400: a paired interval for
  // the difference is tight and excludes 0.
  auto base = Outcomes(400, 0.5, 4);
  std::vector<double> adapter = base;
  int flipped = 0;
  for (auto& x : adapter) {
    if (x == 0 && flipped < 60) {
      x = 1;
      ++flipped;
    }
  }
  ASSERT_OK_AND_ASSIGN(ConfidenceInterval d, BootstrapDifference(400, MeanOf(adapter), MeanOf(base)));
  EXPECT_NEAR(d.point, 60.0 / 400, 1e-12);
  EXPECT_GT(d.lower, 0.0);
  EXPECT_LE(d.lower, d.point);
  EXPECT_GE(d.upper, d.point);
  // Identical systems: the difference is exactly 0 in every replicate.
  ASSERT_OK_AND_ASSIGN(ConfidenceInterval z, BootstrapDifference(400, MeanOf(base), MeanOf(base)));
  EXPECT_EQ(z.lower, 0.0);
  EXPECT_EQ(z.upper, 0.0);
}

TEST(BootstrapTest, RejectsBadOptions) {
  BootstrapOptions o;
  o.confidence = 1.0;
  EXPECT_THAT(BootstrapInterval(10, MeanOf(std::vector<double>(10, 1.0)), o),
              testing::StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("confidence")));
  EXPECT_THAT(BootstrapInterval(0, MeanOf({})), testing::StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no examples")));
}

class FakeEmbedder : public TokenEmbedder {
 public:
  absl::StatusOr<std::vector<std::vector<float>>> EmbedTokens(const std::string& text) override {
    std::vector<std::vector<float>> out;
    for (char c : text) {
      if (c != ' ') out.push_back({static_cast<float>(c == 'a'), static_cast<float>(c == 'b'), 0.1f});
    }
    return out;
  }
  std::string Describe() const override { return "fake"; }
};

TEST(BertScoreTest, UnavailableWithoutAnEncoderNeverAStandIn) {
  BertScoreResult r = ComputeBertScore({}, nullptr, {"a"}, {"a"});
  EXPECT_FALSE(r.available());
  EXPECT_THAT(r.reason, HasSubstr("no encoder model directory configured"));
  const nlohmann::json j = BertScoreToJson(r);
  EXPECT_EQ(j["status"], "unavailable");
  EXPECT_FALSE(j.contains("f1"));  // no number under the BERTScore name
  BertScoreConfig missing;
  missing.encoder_model_dir = "/nonexistent/encoder";
  EXPECT_THAT(ComputeBertScore(missing, nullptr, {"a"}, {"a"}).reason, HasSubstr("has no config.json"));
}

TEST(BertScoreTest, GreedyCosineMatchingWithAnEncoder) {
  const std::string dir = testing::MakeTempDir("bertscore");
  ASSERT_OK(WriteFileAtomically(dir + "/config.json", "{}"));
  BertScoreConfig config;
  config.encoder_model_dir = dir;
  EXPECT_THAT(ComputeBertScore(config, nullptr, {"a"}, {"a"}).reason, HasSubstr("no encoder backend"));
  FakeEmbedder embedder;
  BertScoreResult r = ComputeBertScore(config, &embedder, {"a a", "a"}, {"a a", "b"});
  ASSERT_TRUE(r.available()) << r.reason;
  EXPECT_NEAR(r.per_example_f1[0], 1.0, 1e-6);
  // a=(1,0,.1), b=(0,1,.1): cos = 0.01/1.01.
  EXPECT_NEAR(r.per_example_f1[1], 0.01 / 1.01, 1e-6);
  EXPECT_EQ(r.encoder, "fake");
}

}  // namespace
}  // namespace qlorad::eval

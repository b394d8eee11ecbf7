#include "core/monitor/drift_profile.h"

#include <cmath>

#include <nlohmann/json.hpp>

#include "core/monitor/drift_report.h"
#include "core/util/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

namespace qlorad::monitor {
namespace {

using ::qlorad::testing::StatusIs;
using ::testing::_;
using ::testing::DoubleNear;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

PromptSample P(std::vector<int32_t> ids, std::vector<float> emb = {}) {
  return PromptSample{std::move(ids), std::move(emb)};
}

TEST(DriftProfileTest, TopKOtherBucketLengthsAndRareTokens) {
  // Counts: 1 x4, 2 x3, 3 x2 (ties with 4 broken by smaller id), 4 x2, 5 x1.
  std::vector<PromptSample> prompts = {P({1, 1, 2}), P({1, 2, 3, 4}), P({1, 2, 3, 4, 5}), P({})};
  DriftProfileOptions o;
  o.top_k = 3;
  o.length_cut_points = {1, 4};
  o.rare_min_count = 2;
  ASSERT_OK_AND_ASSIGN(DriftProfile p, DriftProfile::Build(prompts, o));
  EXPECT_EQ(p.num_prompts(), 4);
  EXPECT_EQ(p.num_tokens(), 12);
  EXPECT_THAT(p.top_token_ids(), ElementsAre(1, 2, 3));
  EXPECT_THAT(p.token_counts(), ElementsAre(4, 3, 2, 3));  // other = 4,4,5
  EXPECT_EQ(p.TokenBucket(2), 1);
  EXPECT_EQ(p.TokenBucket(4), 3);
  EXPECT_EQ(p.TokenBucket(999), 3);
  // Lengths 3, 4, 5, 0 with cuts {1,4}: bins (<1)=1, [1,4)=1, [4,inf)=2.
  EXPECT_THAT(p.length_counts(), ElementsAre(1, 1, 2));
  // Known: count >= 2 -> {1,2,3,4}; Good-Turing reference rate: tokens of ids
  // with count <= 2 (3,3,4,4,5) / 12.
  EXPECT_THAT(p.known_token_ids(), ElementsAre(1, 2, 3, 4));
  EXPECT_TRUE(p.IsKnownToken(4));
  EXPECT_FALSE(p.IsKnownToken(5));
  EXPECT_THAT(p.reference_rare_rate(), DoubleNear(5.0 / 12, 1e-12));
  EXPECT_FALSE(p.has_embedding());
}

TEST(DriftProfileTest, QuantileCutPointsFollowNumpyLinearRule) {
  // np.quantile([0..9], [.25,.5,.75]) = 2.25, 4.5, 6.75 -> ceil 3, 5, 7.
  EXPECT_THAT(QuantileCutPoints({9, 8, 7, 6, 5, 4, 3, 2, 1, 0}, 4), ElementsAre(3, 5, 7));
  // Ties collapse to distinct cut points.
  EXPECT_THAT(QuantileCutPoints({5, 5, 5, 5}, 10), ElementsAre(5));
  EXPECT_TRUE(QuantileCutPoints({}, 10).empty());
}

TEST(DriftProfileTest, JsonRoundTripKeepsEverythingAndBinsIdentically) {
  std::vector<PromptSample> prompts;
  for (int i = 0; i < 50; ++i) {
    std::vector<int32_t> ids;
    for (int j = 0; j <= i % 13; ++j) ids.push_back((i * 7 + j * j) % 41);
    prompts.push_back(P(ids, {1.0f + i % 3, 2.0f, 0.5f * (i % 5)}));
  }
  ASSERT_OK_AND_ASSIGN(DriftProfile p, DriftProfile::Build(prompts));
  ASSERT_TRUE(p.has_embedding());
  EXPECT_EQ(p.num_embeddings(), 50);
  EXPECT_GT(p.embedding_spread(), 0);
  const std::string dir = qlorad::testing::MakeTempDir("drift_profile");
  ASSERT_OK(p.Save(dir + "/profile.json"));
  ASSERT_OK_AND_ASSIGN(DriftProfile q, DriftProfile::Load(dir + "/profile.json"));
  EXPECT_EQ(q.ToJson(), p.ToJson());
  EXPECT_EQ(q.top_token_ids(), p.top_token_ids());
  EXPECT_EQ(q.length_cut_points(), p.length_cut_points());
  EXPECT_EQ(q.embedding_mean(), p.embedding_mean());
  ASSERT_OK_AND_ASSIGN(DriftReport a, CompareToProfile(p, prompts));
  ASSERT_OK_AND_ASSIGN(DriftReport b, CompareToProfile(q, prompts));
  EXPECT_EQ(a.ToJson(), b.ToJson());
  // The reference compared with itself: no drift at all.
  EXPECT_EQ(a.psi_length, 0);
  EXPECT_THAT(a.js_tokens, DoubleNear(0, 1e-7));
  EXPECT_THAT(a.embedding_distance, DoubleNear(0, 1e-5));
}

TEST(DriftProfileTest, FromJsonNamesTheBadField) {
  ASSERT_OK_AND_ASSIGN(DriftProfile p, DriftProfile::Build({P({1, 2, 3}), P({2, 3})}));
  nlohmann::json j = nlohmann::json::parse(p.ToJson());
  EXPECT_THAT(DriftProfile::FromJson("{"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("JSON")));
  nlohmann::json bad = j;
  bad["length"]["counts"].push_back(1);
  EXPECT_THAT(DriftProfile::FromJson(bad.dump()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("length.counts")));
  bad = j;
  bad.erase("tokens");
  EXPECT_THAT(DriftProfile::FromJson(bad.dump()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'tokens'")));
  bad = j;
  bad["version"] = 99;
  EXPECT_THAT(DriftProfile::FromJson(bad.dump()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("version")));
  bad = j;
  bad["length"]["cut_points"] = {3, 2};
  bad["length"]["counts"] = {1, 1, 1};
  EXPECT_THAT(DriftProfile::FromJson(bad.dump()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("ascending")));
  EXPECT_THAT(DriftProfile::Load("/nonexistent/profile.json"), StatusIs(absl::StatusCode::kNotFound, _));
}

TEST(DriftProfileTest, BuildRejectsBadInput) {
  EXPECT_THAT(DriftProfile::Build({}), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("0 prompts")));
  EXPECT_THAT(DriftProfile::Build({P({}), P({})}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no tokens")));
  EXPECT_THAT(DriftProfile::Build({P({1}), P({2, -3})}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("prompt 1")));
  EXPECT_THAT(DriftProfile::Build({P({1}, {1, 2}), P({2}, {1, 2, 3})}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("dimension 3")));
  DriftProfileOptions o;
  o.top_k = 0;
  EXPECT_THAT(DriftProfile::Build({P({1})}, o), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("top_k")));
}

TEST(DriftReportTest, ShiftedWindowAgainstHandValues) {
  DriftProfileOptions o;
  o.top_k = 2;
  o.length_cut_points = {3};
  o.rare_min_count = 1;
  // Reference: tokens 1 x3, 2 x2, 3 x1; lengths 2, 4 -> bins (1, 1).
  ASSERT_OK_AND_ASSIGN(DriftProfile p, DriftProfile::Build({P({1, 2}), P({1, 1, 2, 3})}, o));
  EXPECT_THAT(p.token_counts(), ElementsAre(3, 2, 1));
  // Window: one prompt of length 2 with tokens 7, 7 (other, unknown).
  ASSERT_OK_AND_ASSIGN(DriftReport r, CompareToProfile(p, {P({7, 7})}));
  EXPECT_EQ(r.window_size, 1);
  EXPECT_EQ(r.window_tokens, 2);
  // PSI: ref (.5,.5), cur (1, 0->1e-4).
  const double e = kPsiEpsilon;
  EXPECT_THAT(r.psi_length, DoubleNear(0.5 * std::log(2) + (e - 0.5) * std::log(e / 0.5), 1e-12));
  // JS: p = (1/2,1/3,1/6), q = (0,0,1).
  const double m3 = (1.0 / 6 + 1) / 2;
  // p_i / m_i = 2 for the first two buckets (log2 = 1); q only in the last.
  const double jsd = 0.5 * (0.5 * 1 + (1.0 / 3) * 1 + (1.0 / 6) * std::log2((1.0 / 6) / m3)) +
                           0.5 * std::log2(1 / m3);
  EXPECT_THAT(r.js_tokens, DoubleNear(std::sqrt(jsd), 1e-12));
  EXPECT_EQ(r.rare_token_rate, 1.0);
  EXPECT_THAT(r.reference_rare_token_rate, DoubleNear(1.0 / 6, 1e-12));  // one singleton (3)
  EXPECT_THAT(r.rare_token_rate_delta, DoubleNear(5.0 / 6, 1e-12));
  EXPECT_EQ(r.band, DriftBand::kSignificant);
  EXPECT_FALSE(r.has_embedding_distance);
  nlohmann::json j = nlohmann::json::parse(r.ToJson());
  EXPECT_EQ(j["band"], "significant");
  EXPECT_TRUE(j["embedding_distance"].is_null());
}

TEST(DriftReportTest, EmbeddingDistanceIsNormalisedBySpread) {
  // Reference embeddings (1,0) and (0,1): mean (.5,.5), spread = 1 - cos45.
  ASSERT_OK_AND_ASSIGN(DriftProfile p, DriftProfile::Build({P({1}, {1, 0}), P({1}, {0, 1})}));
  const double spread = 1 - std::sqrt(0.5);
  EXPECT_THAT(p.embedding_spread(), DoubleNear(spread, 1e-7));
  ASSERT_OK_AND_ASSIGN(DriftReport r, CompareToProfile(p, {P({1}, {1, 0})}));
  ASSERT_TRUE(r.has_embedding_distance);
  EXPECT_THAT(r.embedding_distance, DoubleNear(1.0, 1e-6));  // as far as a reference prompt
  EXPECT_THAT(CompareToProfile(p, {P({1}, {1, 0, 0})}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("dimension")));
  // No window embeddings: no distance, not an error.
  ASSERT_OK_AND_ASSIGN(DriftReport none, CompareToProfile(p, {P({1})}));
  EXPECT_FALSE(none.has_embedding_distance);
}

TEST(DriftReportTest, EmptyWindowsAreFailedPrecondition) {
  ASSERT_OK_AND_ASSIGN(DriftProfile p, DriftProfile::Build({P({1, 2})}));
  EXPECT_THAT(CompareToProfile(p, std::vector<PromptSample>{}),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("empty")));
  EXPECT_THAT(CompareToProfile(p, {P({})}),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("no tokens")));
}

}  // namespace
}  // namespace qlorad::monitor

#include "core/monitor/drift_stats.h"

#include <cmath>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace qlorad::monitor {
namespace {

using ::testing::DoubleNear;
using ::testing::HasSubstr;
using ::testing::_;
using ::qlorad::testing::StatusIs;

TEST(PsiTest, IdenticalHistogramsGiveZeroAndScaleDoesNotMatter) {
  ASSERT_OK_AND_ASSIGN(double v, PopulationStabilityIndex({1, 2, 3}, {10, 20, 30}));
  EXPECT_EQ(v, 0.0);
}

TEST(PsiTest, MatchesHandComputation) {
  // ref = (.5,.5), cur = (.25,.75): (.25-.5)ln(.5) + (.75-.5)ln(1.5).
  ASSERT_OK_AND_ASSIGN(double v, PopulationStabilityIndex({1, 1}, {1, 3}));
  EXPECT_THAT(v, DoubleNear(-0.25 * std::log(0.5) + 0.25 * std::log(1.5), 1e-12));
}

TEST(PsiTest, EmptyBinsAreFlooredAtEpsilonWithoutRenormalising) {
  // ref (0, 1) -> (1e-4, 1); cur (1, 0) -> (1, 1e-4).
  ASSERT_OK_AND_ASSIGN(double v, PopulationStabilityIndex({0, 5}, {7, 0}));
  const double e = kPsiEpsilon;
  EXPECT_THAT(v, DoubleNear((1 - e) * std::log(1 / e) + (e - 1) * std::log(e / 1), 1e-9));
  // A different epsilon changes the value: the rule is really applied.
  ASSERT_OK_AND_ASSIGN(double v2, PopulationStabilityIndex({0, 5}, {7, 0}, 1e-3));
  EXPECT_LT(v2, v);
}

TEST(PsiTest, RejectsBadInput) {
  EXPECT_THAT(PopulationStabilityIndex({1, 2}, {1, 2, 3}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("different bin counts")));
  EXPECT_THAT(PopulationStabilityIndex({}, {}), StatusIs(absl::StatusCode::kInvalidArgument, _));
  EXPECT_THAT(PopulationStabilityIndex({0, 0}, {1, 1}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("reference histogram is empty")));
  EXPECT_THAT(PopulationStabilityIndex({1, -1}, {1, 1}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bin 1")));
  EXPECT_THAT(PopulationStabilityIndex({1, NAN}, {1, 1}), StatusIs(absl::StatusCode::kInvalidArgument, _));
  EXPECT_THAT(PopulationStabilityIndex({1, 1}, {1, 1}, 0.0), StatusIs(absl::StatusCode::kInvalidArgument, _));
}

TEST(JsTest, IdenticalIsZeroDisjointIsOneInBase2) {
  ASSERT_OK_AND_ASSIGN(double same, JensenShannonDistance({1, 2, 3}, {2, 4, 6}));
  EXPECT_THAT(same, DoubleNear(0, 1e-12));
  ASSERT_OK_AND_ASSIGN(double disjoint, JensenShannonDistance({1, 0, 0}, {0, 3, 1}));
  EXPECT_THAT(disjoint, DoubleNear(1.0, 1e-12));
}

TEST(JsTest, MatchesHandComputationAndIsSymmetric) {
  // p=(1,0), q=(.5,.5): m=(.75,.25); JSD = .5*log2(1/.75) + .5*(.5log2(.5/.75)+.5log2(.5/.25)).
  const double jsd = 0.5 * std::log2(1 / 0.75) +
                     0.5 * (0.5 * std::log2(0.5 / 0.75) + 0.5 * std::log2(0.5 / 0.25));
  ASSERT_OK_AND_ASSIGN(double a, JensenShannonDistance({1, 0}, {1, 1}));
  ASSERT_OK_AND_ASSIGN(double b, JensenShannonDistance({1, 1}, {1, 0}));
  EXPECT_THAT(a, DoubleNear(std::sqrt(jsd), 1e-12));
  EXPECT_THAT(b, DoubleNear(a, 1e-15));
}

TEST(JsTest, RejectsBadInput) {
  EXPECT_THAT(JensenShannonDistance({1}, {1, 2}), StatusIs(absl::StatusCode::kInvalidArgument, _));
  EXPECT_THAT(JensenShannonDistance({0, 0}, {1, 2}), StatusIs(absl::StatusCode::kInvalidArgument, _));
}

TEST(BandTest, ThresholdsAreInclusiveOfModerate) {
  EXPECT_EQ(BandOf(0.0), DriftBand::kStable);
  EXPECT_EQ(BandOf(0.0999), DriftBand::kStable);
  EXPECT_EQ(BandOf(0.1), DriftBand::kModerate);
  EXPECT_EQ(BandOf(0.25), DriftBand::kModerate);
  EXPECT_EQ(BandOf(0.2501), DriftBand::kSignificant);
  EXPECT_EQ(DriftBandName(DriftBand::kSignificant), "significant");
  EXPECT_EQ(MaxBand(DriftBand::kModerate, DriftBand::kStable), DriftBand::kModerate);
  EXPECT_EQ(MaxBand(DriftBand::kModerate, DriftBand::kSignificant), DriftBand::kSignificant);
}

TEST(CosineTest, DistanceValuesAndErrors) {
  ASSERT_OK_AND_ASSIGN(double same, CosineDistance({1, 2}, {2, 4}));
  EXPECT_THAT(same, DoubleNear(0, 1e-12));
  ASSERT_OK_AND_ASSIGN(double ortho, CosineDistance({1, 0}, {0, 3}));
  EXPECT_THAT(ortho, DoubleNear(1, 1e-12));
  ASSERT_OK_AND_ASSIGN(double opposite, CosineDistance({1, 1}, {-1, -1}));
  EXPECT_THAT(opposite, DoubleNear(2, 1e-12));
  EXPECT_THAT(CosineDistance({0, 0}, {1, 1}), StatusIs(absl::StatusCode::kInvalidArgument, _));
  EXPECT_THAT(CosineDistance({1}, {1, 1}), StatusIs(absl::StatusCode::kInvalidArgument, _));
}

TEST(BinIndexTest, HalfOpenBinsWithOpenEnds) {
  const std::vector<double> cuts = {5, 10};
  EXPECT_EQ(BinIndex(cuts, -100), 0);
  EXPECT_EQ(BinIndex(cuts, 4.99), 0);
  EXPECT_EQ(BinIndex(cuts, 5), 1);
  EXPECT_EQ(BinIndex(cuts, 9), 1);
  EXPECT_EQ(BinIndex(cuts, 10), 2);
  EXPECT_EQ(BinIndex(cuts, 1e9), 2);
  EXPECT_EQ(BinIndex({}, 3), 0);
}

}  // namespace
}  // namespace qlorad::monitor

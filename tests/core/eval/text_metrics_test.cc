#include "core/eval/text_metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/testing/status_matchers.h"

namespace qlorad::eval {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(SquadNormalizeTest, LowercasePunctuationArticlesWhitespace) {
  EXPECT_EQ(SquadNormalize("The  Quick, brown FOX!"), "quick brown fox");
  EXPECT_EQ(SquadNormalize("an apple a day"), "apple day");
  EXPECT_EQ(SquadNormalize("theater anthem"), "theater anthem");  // articles only as whole words
  EXPECT_EQ(SquadNormalize("the-end"), "theend");                 // punctuation removed before articles
  EXPECT_THAT(SquadTokens("  A  b\tc\n"), ElementsAre("b", "c"));
}

TEST(ExactMatchTest, NormalisedAndStrict) {
  EXPECT_EQ(ExactMatch("The Eiffel Tower.", "eiffel tower"), 1.0);
  EXPECT_EQ(ExactMatch("Eiffel", "eiffel tower"), 0.0);
  EXPECT_EQ(StrictExactMatch("  positive\n", "positive"), 1.0);
  EXPECT_EQ(StrictExactMatch("Positive", "positive"), 0.0);
}

TEST(TokenF1Test, SquadDefinition) {
  // pred {eiffel, tower, paris}, ref {eiffel, tower}: common 2, P=2/3, R=1, F1=0.8.
  EXPECT_NEAR(TokenF1("the Eiffel tower, Paris", "Eiffel Tower"), 0.8, 1e-12);
  // Multiset intersection: {x,x,y} vs {x,y,y} -> common {x,y}.
  EXPECT_NEAR(TokenF1("x x y", "x y y"), 2.0 / 3.0, 1e-12);  // common 2, P=R=2/3
  EXPECT_EQ(TokenF1("", ""), 1.0);                            // both empty (SQuAD v2.0)
  EXPECT_EQ(TokenF1("the", "answer"), 0.0);                   // prediction normalises to empty
  EXPECT_EQ(TokenF1("cat", "dog"), 0.0);
}

TEST(FormatCheckerTest, RegexIsAnchoredAtBothEnds) {
  ASSERT_OK_AND_ASSIGN(auto checker, FormatChecker::CreateRegex(R"((positive|negative))"));
  EXPECT_TRUE(checker->Matches("positive"));
  EXPECT_FALSE(checker->Matches("positive!"));
  EXPECT_FALSE(checker->Matches("very negative"));
  ASSERT_OK_AND_ASSIGN(auto date, FormatChecker::CreateRegex(R"(\d{4}-\d{2}-\d{2})"));
  EXPECT_TRUE(date->Matches("2026-11-29"));
  EXPECT_FALSE(date->Matches("29.11.2026"));
  EXPECT_THAT(FormatChecker::CreateRegex("(unclosed"),
              testing::StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("does not compile at offset")));
}

TEST(FormatCheckerTest, JsonParses) {
  auto any = FormatChecker::CreateJson(false);
  auto object = FormatChecker::CreateJson(true);
  EXPECT_TRUE(any->Matches(R"({"label": "spam"})"));
  EXPECT_TRUE(any->Matches("[1, 2]"));
  EXPECT_FALSE(object->Matches("[1, 2]"));
  EXPECT_TRUE(object->Matches(R"( {"a": 1} )"));
  EXPECT_FALSE(any->Matches(R"({"a": 1)"));
  EXPECT_FALSE(any->Matches("label: spam"));
}

}  // namespace
}  // namespace qlorad::eval

#include "core/eval/review.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>

#include "absl/strings/str_cat.h"
#include "core/eval/csv.h"
#include "tests/testing/status_matchers.h"

namespace qlorad::eval {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<ReviewItem> Holdout(int n) {
  std::vector<ReviewItem> items;
  for (int i = 0; i < n; ++i) {
    items.push_back({absl::StrCat("ex", i), absl::StrCat("input, \"quoted\"\nline ", i), absl::StrCat("ref ", i),
                     absl::StrCat("base ", i), absl::StrCat("adapter ", i)});
  }
  return items;
}

TEST(CsvTest, Rfc4180RoundTrip) {
  const std::vector<std::string> fields = {"plain", "with,comma", "with \"quote\"", "multi\r\nline", ""};
  const std::string rec = CsvRecord(fields);
  EXPECT_EQ(rec, "plain,\"with,comma\",\"with \"\"quote\"\"\",\"multi\r\nline\",\r\n");
  ASSERT_OK_AND_ASSIGN(auto parsed, ParseCsv(rec + CsvRecord({"a", "b"})));
  ASSERT_EQ(parsed.size(), 2u);
  EXPECT_EQ(parsed[0], fields);
  EXPECT_THAT(parsed[1], ElementsAre("a", "b"));
  EXPECT_THAT(ParseCsv("a,b\"c\r\n"), testing::StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("line 1")));
  EXPECT_THAT(ParseCsv("a,\"open\r\n"), testing::StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unterminated")));
}

TEST(ReviewSampleTest, SeededSizeBoundedAndInHoldoutOrder) {
  ReviewExportOptions o;
  o.sample_size = 60;
  o.seed = 11;
  ASSERT_OK_AND_ASSIGN(ReviewSample a, SelectReviewSample(Holdout(300), o));
  ASSERT_OK_AND_ASSIGN(ReviewSample b, SelectReviewSample(Holdout(300), o));
  ASSERT_EQ(a.items.size(), 60u);
  for (size_t i = 0; i < a.items.size(); ++i) EXPECT_EQ(a.items[i].id, b.items[i].id);
  o.seed = 12;
  ASSERT_OK_AND_ASSIGN(ReviewSample c, SelectReviewSample(Holdout(300), o));
  std::set<std::string> ids_a, ids_c;
  for (const auto& i : a.items) ids_a.insert(i.id);
  for (const auto& i : c.items) ids_c.insert(i.id);
  EXPECT_NE(ids_a, ids_c);
  o.sample_size = 40;
  EXPECT_THAT(SelectReviewSample(Holdout(300), o), testing::StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("[50, 100]")));
  o.sample_size = 50;
  ASSERT_OK_AND_ASSIGN(ReviewSample small, SelectReviewSample(Holdout(20), o));
  EXPECT_EQ(small.items.size(), 20u);
  EXPECT_THAT(small.note, HasSubstr("only 20 items"));
}

TEST(ReviewSampleTest, CsvAndJsonlSideBySide) {
  ReviewExportOptions o;
  ASSERT_OK_AND_ASSIGN(ReviewSample s, SelectReviewSample(Holdout(80), o));
  ASSERT_OK_AND_ASSIGN(auto rows, ParseCsv(ReviewSampleToCsv(s)));
  ASSERT_EQ(rows.size(), 51u);
  EXPECT_THAT(rows[0], ElementsAre("item_id", "input", "reference", "baseline_output", "adapter_output",
                                   "rating_baseline", "rating_adapter", "preference", "comment"));
  EXPECT_EQ(rows[1][1], s.items[0].input);  // embedded quotes/newline survive
  EXPECT_EQ(rows[1][3], s.items[0].baseline_output);
  const std::string jsonl = ReviewSampleToJsonl(s);
  const auto first = nlohmann::json::parse(jsonl.substr(0, jsonl.find('\n')));
  EXPECT_EQ(first["adapter_output"], s.items[0].adapter_output);
}

TEST(ReviewSampleTest, BlindExportHidesWhichIsWhichAndImportUnblinds) {
  ReviewExportOptions o;
  o.blind = true;
  o.seed = 5;
  ASSERT_OK_AND_ASSIGN(ReviewSample s, SelectReviewSample(Holdout(100), o));
  const std::string csv = ReviewSampleToCsv(s);
  EXPECT_EQ(csv.find("baseline_output"), std::string::npos);
  EXPECT_EQ(csv.find("adapter_output"), std::string::npos);
  int a_adapter = 0;
  for (const auto& [id, is_adapter] : s.a_is_adapter) a_adapter += is_adapter;
  EXPECT_GT(a_adapter, 10);  // both orders occur
  EXPECT_LT(a_adapter, 40);

  // A reviewer who always prefers the adapter's output and rates it 5 (baseline 2).
  ASSERT_OK_AND_ASSIGN(auto rows, ParseCsv(csv));
  std::string filled = CsvRecord(rows[0]);
  for (size_t r = 1; r < rows.size(); ++r) {
    auto row = rows[r];
    const bool a_is_adapter = row[3].rfind("adapter", 0) == 0;
    row[5] = a_is_adapter ? "5" : "2";
    row[6] = a_is_adapter ? "2" : "5";
    row[7] = a_is_adapter ? "A" : "B";
    filled += CsvRecord(row);
  }
  // The key survives the record round trip.
  ASSERT_OK_AND_ASSIGN(ReviewSample restored, ReviewSampleFromJson(ReviewSampleToJson(s)));
  ASSERT_OK_AND_ASSIGN(std::vector<Rating> ratings, ImportRatingsCsv(restored, "alice", filled));
  ASSERT_EQ(ratings.size(), 50u);
  for (const Rating& r : ratings) {
    EXPECT_EQ(r.adapter_rating, 5);
    EXPECT_EQ(r.baseline_rating, 2);
    EXPECT_EQ(r.preference, Preference::kAdapter);
  }
}

TEST(ReviewImportTest, ValidatesIdsScaleAndDuplicates) {
  ReviewExportOptions o;
  ASSERT_OK_AND_ASSIGN(ReviewSample s, SelectReviewSample(Holdout(60), o));
  const std::string header = CsvRecord({"item_id", "input", "reference", "baseline_output", "adapter_output",
                                        "rating_baseline", "rating_adapter", "preference", "comment"});
  const std::string id = s.items[0].id;
  EXPECT_THAT(ImportRatingsCsv(s, "bob", header + CsvRecord({"nope", "", "", "", "", "3", "3", "tie", ""})),
              testing::StatusIs(absl::StatusCode::kNotFound, HasSubstr("'nope' is not in the review sample")));
  EXPECT_THAT(ImportRatingsCsv(s, "bob", header + CsvRecord({id, "", "", "", "", "6", "3", "", ""})),
              testing::StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("rating_baseline: rating '6'")));
  EXPECT_THAT(ImportRatingsCsv(s, "bob", header + CsvRecord({id, "", "", "", "", "3", "x", "", ""})),
              testing::StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("rating_adapter")));
  EXPECT_THAT(ImportRatingsCsv(s, "bob", header + CsvRecord({id, "", "", "", "", "3", "3", "A", ""})),
              testing::StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("preference")));
  const std::string row = CsvRecord({id, "", "", "", "", "3", "4", "adapter", ""});
  EXPECT_THAT(ImportRatingsCsv(s, "bob", header + row + row),
              testing::StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("rated twice")));
  EXPECT_THAT(ImportRatingsCsv(s, "bob", CsvRecord({"item_id", "rating_a"})),
              testing::StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("missing column")));
  // Unrated rows are skipped; JSONL works the same way.
  ASSERT_OK_AND_ASSIGN(auto one, ImportRatingsCsv(s, "bob", header + row + CsvRecord({s.items[1].id, "", "", "", "", "", "", "", ""})));
  EXPECT_EQ(one.size(), 1u);
  ASSERT_OK_AND_ASSIGN(auto jl, ImportRatingsJsonl(s, "carol",
                                                   absl::StrCat(R"({"item_id":")", id,
                                                                R"(","rating_baseline":2,"rating_adapter":4,"preference":"adapter"})", "\n")));
  ASSERT_EQ(jl.size(), 1u);
  EXPECT_EQ(jl[0].adapter_rating, 4);
}

TEST(AgreementTest, CohenKappaHandComputed) {
  // 10 items, labels y/n. a: y y y y y y n n n n ; b: y y y y n n n n n y
  // agree on 7 -> p_o = .7; p_a(y)=.6, p_b(y)=.5 -> p_e = .6*.5 + .4*.5 = .5
  // kappa = (.7 - .5)/(1 - .5) = .4
  const std::vector<std::string> a = {"y", "y", "y", "y", "y", "y", "n", "n", "n", "n"};
  const std::vector<std::string> b = {"y", "y", "y", "y", "n", "n", "n", "n", "n", "y"};
  ASSERT_TRUE(CohenKappa(a, b).has_value());
  EXPECT_NEAR(*CohenKappa(a, b), 0.4, 1e-12);
  EXPECT_NEAR(*CohenKappa(a, a), 1.0, 1e-12);
  EXPECT_FALSE(CohenKappa({"y", "y"}, {"y", "y"}).has_value());  // p_e = 1: undefined (sklearn: nan)
}

TEST(AgreementTest, TwoReviewersSummary) {
  std::vector<Rating> ratings;
  for (int i = 0; i < 10; ++i) {
    const std::string id = absl::StrCat("ex", i);
    ratings.push_back({id, "alice", 2, i < 6 ? 5 : 3, i < 6 ? Preference::kAdapter : Preference::kBaseline, ""});
    ratings.push_back({id, "bob", 2, i < 5 || i == 9 ? 5 : 3,
                       i < 4 ? Preference::kAdapter : (i < 8 ? Preference::kTie : Preference::kBaseline), ""});
  }
  ASSERT_OK_AND_ASSIGN(ReviewSummary s, SummariseReview(ratings));
  EXPECT_THAT(s.reviewers, ElementsAre("alice", "bob"));
  ASSERT_TRUE(s.rating_agreement.has_value());
  // 20 judgements per reviewer (10 baseline, all "2", + 10 adapter); adapter ratings
  // differ only at i=5 and i=9 -> 18/20 agree.
  EXPECT_NEAR(s.rating_agreement->percent_agreement, 0.9, 1e-12);
  // Labels {2,3,5}: each reviewer 10x2, 4x3, 6x5 of 20 -> p_e = .5^2+.2^2+.3^2 = .38,
  // p_o = .9 -> kappa = (.9-.38)/(.62) = .83870967...
  EXPECT_NEAR(*s.rating_agreement->cohen_kappa, 0.52 / 0.62, 1e-12);
  ASSERT_TRUE(s.preference_agreement.has_value());
  EXPECT_NEAR(s.preference_agreement->percent_agreement, 0.6, 1e-12);  // i=0..3 and 8,9 agree
  EXPECT_THAT(SummariseReview({ratings[0], ratings[0]}),
              testing::StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("twice")));
}

}  // namespace
}  // namespace qlorad::eval

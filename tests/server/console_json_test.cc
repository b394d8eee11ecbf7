// The review console's JSON shapes: request bodies refused naming the field, and the
// adapter page's evaluation summary never carries a blind sample's key.
#include "server/daemon/console_json.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace qlorad::server {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

TEST(ConsoleJson, JudgementFromBody) {
  auto j = JudgementFromJson(R"({"rating_a":4,"rating_b":2,"preference":"A","comment":"terse"})", "item-7");
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_EQ(j->item_id, "item-7");
  EXPECT_EQ(j->rating_a, 4);
  EXPECT_EQ(j->rating_b, 2);
  EXPECT_EQ(j->preference, "A");
  EXPECT_EQ(j->comment, "terse");
}

TEST(ConsoleJson, JudgementRefusalsNameTheField) {
  auto bad_type = JudgementFromJson(R"({"rating_a":"five"})", "x");
  ASSERT_FALSE(bad_type.ok());
  EXPECT_EQ(bad_type.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad_type.status().message()), StartsWith("body.rating_a: expected number"));
  auto not_json = JudgementFromJson("rating_a=5", "x");
  ASSERT_FALSE(not_json.ok());
  EXPECT_THAT(std::string(not_json.status().message()), StartsWith("body: not a JSON object"));
  auto bad_pref = JudgementFromJson(R"({"preference":1})", "x");
  ASSERT_FALSE(bad_pref.ok());
  EXPECT_THAT(std::string(bad_pref.status().message()), StartsWith("body.preference"));
}

TEST(ConsoleJson, DecisionCarriesTheEvidence) {
  auto d = DecisionFromJson(R"({"risk_class":"high","documentation_ref":"DOC-1","note":"ok",
      "evidence_evaluation_ids":["ev1","ev2"],"evidence_review_summary":{"cohen_kappa":0.5}})", "dora");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->actor, "dora");
  EXPECT_EQ(d->risk_class, "high");
  EXPECT_EQ(d->documentation_ref, "DOC-1");
  EXPECT_EQ(d->evidence_evaluation_ids, (std::vector<std::string>{"ev1", "ev2"}));
  EXPECT_EQ(d->evidence_review_summary["cohen_kappa"], 0.5);
  auto defaults = DecisionFromJson("{}", "dora");
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->risk_class, "minimal");
  EXPECT_TRUE(defaults->evidence_review_summary.is_null());
  auto bad_ids = DecisionFromJson(R"({"evidence_evaluation_ids":[1]})", "dora");
  ASSERT_FALSE(bad_ids.ok());
  EXPECT_THAT(std::string(bad_ids.status().message()), StartsWith("body.evidence_evaluation_ids"));
}

TEST(ConsoleJson, EvaluationSummaryDropsOutputsAndTheBlindKey) {
  service::EvaluationInfo e;
  e.id = "ev1";
  e.report_path = "/state/evaluations/ev1/report.html";
  e.record = {{"example_ids", {"a", "b"}},
              {"baseline", {{"outputs", {"x", "y"}}, {"classification", {{"confusion_matrix", {{1, 0}, {0, 1}}}}}}},
              {"adapter", {{"outputs", {"x", "y"}}, {"generation", {{"per_example", {1}}, {"token_f1", 0.5}}}}},
              {"review",
               {{"sample", {{"blind", true}, {"items", {{{"id", "a"}}, {{"id", "b"}}}}, {"key", {{"a", {{"A", "adapter"}}}}}}},
                {"summary", {{"reviewers", {"ana"}}, {"judgements", {1, 2}}, {"win_rate", {{"rate", 0.5}}}}}}}};
  const nlohmann::json j = EvaluationSummaryToJson(e);
  EXPECT_TRUE(j["has_report"].get<bool>());
  EXPECT_THAT(j.dump(), Not(HasSubstr("\"key\"")));
  EXPECT_THAT(j.dump(), Not(HasSubstr("outputs")));
  EXPECT_FALSE(j["record"].contains("example_ids"));
  EXPECT_FALSE(j["record"]["adapter"]["generation"].contains("per_example"));
  EXPECT_EQ(j["record"]["baseline"]["classification"]["confusion_matrix"][0][0], 1);
  EXPECT_EQ(j["record"]["review"]["sample"]["items"], 2);
  EXPECT_FALSE(j["record"]["review"]["summary"].contains("judgements"));
  EXPECT_EQ(j["record"]["review"]["summary"]["win_rate"]["rate"], 0.5);
}

}  // namespace
}  // namespace qlorad::server

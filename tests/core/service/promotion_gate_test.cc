// PromotionGate over a real SQLite store: when the gate applies, what it compares, and the
// store's guard that moves an alias only where the gate saw it. The numbers of the
// comparison itself are checked against an independent reference by
// promotion_gate_reference (tests/reference/promotion_gate_reference.py).
#include "core/service/promotion_gate.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/eval/evaluation_record.h"
#include "core/store/audit_log.h"
#include "core/store/daemon_migrations.h"
#include "core/store/evaluation_repository.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

namespace qlorad::service {
namespace {

using ::testing::HasSubstr;

// Hold-out of 60 examples, labels a/b/c.
std::vector<std::string> References() {
  std::vector<std::string> refs;
  for (int i = 0; i < 60; ++i) refs.push_back(std::string(1, static_cast<char>('a' + (i * 7) % 3)));
  return refs;
}

// Outputs right on the first `right` examples, a rotated label after.
std::vector<std::string> Outputs(int right) {
  std::vector<std::string> out = References();
  for (size_t i = right; i < out.size(); ++i) out[i] = std::string(1, static_cast<char>('a' + (out[i][0] - 'a' + 1) % 3));
  return out;
}

class PromotionGateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto db = store::SharedStore::Open(testing::MakeTempDir("promotion_gate") + "/qlorad.db",
                                       store::DaemonDatabaseMigrations());
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = *std::move(db);
    adapters_ = std::make_unique<store::AdapterStore>(db_.get());
    gate_ = std::make_unique<PromotionGate>(db_.get(), adapters_.get(), 0.05);
    for (const char* id : {"s@1", "s@2"}) {
      ASSERT_OK(adapters_->Register({id, "s", id[2] - '0', "job", std::string("/a/") + id, "fp", "ds", "t0", false},
                                    "trainer", {}));
      ASSERT_OK(db_->With([&](store::Store& s) { return store::AdapterLifecycle(&s).MarkEvaluated(id, "ev", "e0"); }));
    }
    store::DeploymentPolicy policy;
    policy.require_approval = false;
    ASSERT_OK(adapters_->Promote("s@1", "s:prod", "ops", policy));
  }

  // Stores an evaluation of `adapter` whose outputs are right on `right` examples.
  void Evaluate(const std::string& id, const std::string& adapter, int right, const std::string& scoring = "log_likelihood",
                const std::string& created_at = "2026-12-05T00:00:00.000Z") {
    std::vector<std::string> refs = References(), ids;
    for (size_t i = 0; i < refs.size(); ++i) ids.push_back("ex" + std::to_string(i));
    eval::EvaluationInputs in{ids, refs, refs, Outputs(30), Outputs(right)};
    eval::RecordOptions o;
    o.labels = {"a", "b", "c"};
    o.record_id = id;
    o.created_at = created_at;
    o.adapter_id = adapter;
    o.dataset_id = scoring == "log_likelihood" ? "ds" : "ds-other";
    o.base_fingerprint = "fp";
    o.holdout_checksum = "sha";
    o.settings = {{"scoring", scoring}, {"labels", o.labels}};
    auto record = eval::BuildEvaluationRecord(in, o);
    ASSERT_TRUE(record.ok()) << record.status();
    ASSERT_OK(db_->With([&](store::Store& s) {
      return store::EvaluationRepository(&s).Put(
          {id, record->baseline_key, adapter, created_at, eval::EvaluationRecordToJson(*record).dump()});
    }));
  }

  std::unique_ptr<store::SharedStore> db_;
  std::unique_ptr<store::AdapterStore> adapters_;
  std::unique_ptr<PromotionGate> gate_;
};

TEST_F(PromotionGateTest, DoesNotApplyWithoutASeparateEvaluatedServingVersion) {
  auto empty_alias = gate_->Check("s@2", "s:canary");
  ASSERT_OK(empty_alias.status());
  EXPECT_FALSE(empty_alias->applies);
  EXPECT_TRUE(empty_alias->passed);
  EXPECT_THAT(empty_alias->message, HasSubstr("serves nothing yet"));
  auto same = gate_->Check("s@1", "s:prod");
  ASSERT_OK(same.status());
  EXPECT_FALSE(same->applies);
  EXPECT_THAT(same->message, HasSubstr("already serves s@1"));
  auto unevaluated_serving = gate_->Check("s@2", "s:prod");
  ASSERT_OK(unevaluated_serving.status());
  EXPECT_FALSE(unevaluated_serving->applies);
  EXPECT_TRUE(unevaluated_serving->passed);
  EXPECT_THAT(unevaluated_serving->message, HasSubstr("s@1 has no evaluation"));
}

TEST_F(PromotionGateTest, RefusesACandidateWithoutAComparableEvaluation) {
  Evaluate("e1", "s@1", 50);
  Evaluate("e2", "s@2", 60, "generation");  // other settings: not comparable
  auto check = gate_->Check("s@2", "s:prod");
  ASSERT_OK(check.status());
  EXPECT_TRUE(check->applies);
  EXPECT_FALSE(check->passed);
  EXPECT_EQ(check->serving_evaluation_id, "e1");
  EXPECT_THAT(check->message, HasSubstr("s@2 has no evaluation comparable with s@1's evaluation e1 (dataset ds"));
  EXPECT_THAT(check->message, HasSubstr("hint:"));
}

TEST_F(PromotionGateTest, RefusesWorseAndPassesEqualOrBetter) {
  Evaluate("e1", "s@1", 50);
  Evaluate("e2", "s@2", 30);
  auto worse = gate_->Check("s@2", "s:prod");
  ASSERT_OK(worse.status());
  EXPECT_TRUE(worse->applies);
  EXPECT_FALSE(worse->passed);
  EXPECT_EQ(worse->metric, "macro_f1");
  EXPECT_EQ(worse->candidate_evaluation_id, "e2");
  EXPECT_LT(worse->candidate_value, worse->serving_value);
  EXPECT_NEAR(worse->delta, worse->candidate_value - worse->serving_value, 1e-12);
  EXPECT_LT(worse->delta_low, -0.05);
  EXPECT_LE(worse->delta_low, worse->delta);
  EXPECT_GE(worse->delta_high, worse->delta);
  EXPECT_THAT(worse->message, HasSubstr("refused (the lower bound"));

  Evaluate("e3", "s@2", 50, "log_likelihood", "2026-12-05T01:00:00.000Z");  // the newest comparable one counts
  auto equal = gate_->Check("s@2", "s:prod");
  ASSERT_OK(equal.status());
  EXPECT_TRUE(equal->passed);
  EXPECT_EQ(equal->candidate_evaluation_id, "e3");
  EXPECT_EQ(equal->delta, 0);
  EXPECT_EQ(equal->delta_low, 0);
  EXPECT_THAT(equal->message, HasSubstr("passed"));
  nlohmann::json j = PromotionCheckToJson(*equal);
  EXPECT_EQ(j["candidate_evaluation_id"], "e3");
  EXPECT_EQ(j["delta"]["lower"], 0.0);
}

TEST_F(PromotionGateTest, ComparesOnAnOlderServingEvaluationWhenOnlyThatOneIsShared) {
  Evaluate("e1", "s@1", 50);
  Evaluate("e1-gen", "s@1", 50, "generation", "2026-12-05T02:00:00.000Z");  // newer, other settings
  Evaluate("e2", "s@2", 55);
  auto check = gate_->Check("s@2", "s:prod");
  ASSERT_OK(check.status());
  EXPECT_EQ(check->serving_evaluation_id, "e1");
  EXPECT_TRUE(check->passed);
  EXPECT_GT(check->delta, 0);
}

TEST_F(PromotionGateTest, TheStoreMovesTheAliasOnlyWhereTheGateSawIt) {
  store::DeploymentPolicy policy;
  policy.require_approval = false;
  store::PromoteGuard stale;
  stale.expected_target = "s@0";
  stale.details = {{"gate", {{"passed", true}}}};
  auto before = db_->Read<std::vector<store::AuditEntry>>(
      [&](store::Store& s) { return store::AuditLog(&s).List("adapter", "s@2"); });
  ASSERT_OK(before.status());
  EXPECT_THAT(adapters_->Promote("s@2", "s:prod", "ops", policy, stale),
              testing::StatusIs(absl::StatusCode::kAborted, HasSubstr("moved to 's@1'")));
  auto target = adapters_->ResolveAlias("s:prod");
  ASSERT_OK(target.status());
  EXPECT_EQ(target->value_or(""), "s@1");
  store::PromoteGuard fresh = stale;
  fresh.expected_target = "s@1";
  ASSERT_OK(adapters_->Promote("s@2", "s:prod", "ops", policy, fresh));
  auto after = db_->Read<std::vector<store::AuditEntry>>(
      [&](store::Store& s) { return store::AuditLog(&s).List("adapter", "s@2"); });
  ASSERT_OK(after.status());
  ASSERT_EQ(after->size(), before->size() + 1);  // the refused try logged nothing
  EXPECT_EQ(after->back().details["gate"]["passed"], true);
  EXPECT_EQ(after->back().details["previous_target"], "s@1");
}

}  // namespace
}  // namespace qlorad::service

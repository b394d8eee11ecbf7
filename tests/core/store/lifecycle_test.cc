#include "core/store/adapter_lifecycle.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/store/migrations.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

namespace qlorad::store {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr auto kFailed = absl::StatusCode::kFailedPrecondition;

class LifecycleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = testing::MakeTempDir("lifecycle") + "/qlorad.db";
    Reopen();
  }
  void Reopen() {
    lifecycle_.reset();
    store_.reset();
    auto store = Store::Open(path_, CoreMigrations());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    lifecycle_ = std::make_unique<AdapterLifecycle>(store_.get(), [this] {
      const int t = tick_++;
      return "2026-11-29T05:00:" + std::string(t < 10 ? "0" : "") + std::to_string(t) + ".000Z";
    });
  }
  Decision Approver(RiskClass risk = RiskClass::kLimited) {
    Decision d;
    d.actor = "product-owner@example.org";
    d.note = "reviewed the evaluation report";
    d.risk_class = risk;
    return d;
  }
  // Brings `id` into `state` along the normal path.
  void Reach(const std::string& id, AdapterState state) {
    ASSERT_OK(lifecycle_->RegisterTrained(id, "trainer"));
    if (state == AdapterState::kTrained) return;
    if (state == AdapterState::kRetired) {
      ASSERT_OK(lifecycle_->Retire(id, "ops", "test"));
      return;
    }
    ASSERT_OK(lifecycle_->MarkEvaluated(id, "evaluator", "eval-" + id));
    if (state == AdapterState::kEvaluated) return;
    if (state == AdapterState::kRejected) {
      ASSERT_OK(lifecycle_->Reject(id, Approver()));
      return;
    }
    ASSERT_OK(lifecycle_->Approve(id, Approver()));
    if (state == AdapterState::kApproved) return;
    ASSERT_OK(lifecycle_->Deploy(id, "ops", "prod"));
  }
  // Attempts the transition to `to` from the adapter's current state.
  absl::Status Attempt(const std::string& id, AdapterState to, const DeploymentPolicy& policy = {}) {
    switch (to) {
      case AdapterState::kTrained: return lifecycle_->RegisterTrained(id, "trainer");
      case AdapterState::kEvaluated: return lifecycle_->MarkEvaluated(id, "evaluator", "eval-2");
      case AdapterState::kApproved: return lifecycle_->Approve(id, Approver());
      case AdapterState::kRejected: return lifecycle_->Reject(id, Approver());
      case AdapterState::kDeployed: return lifecycle_->Deploy(id, "ops", "prod", policy);
      case AdapterState::kRetired: return lifecycle_->Retire(id, "ops", "done");
    }
    return absl::InternalError("unreachable");
  }

  std::string path_;
  int tick_ = 0;
  std::unique_ptr<Store> store_;
  std::unique_ptr<AdapterLifecycle> lifecycle_;
};

TEST_F(LifecycleTest, HappyPathIsAuditedWithWhoWhenAndDecision) {
  Reach("sentiment-v1", AdapterState::kDeployed);
  ASSERT_OK(lifecycle_->Retire("sentiment-v1", "ops", "replaced by v2"));
  ASSERT_OK_AND_ASSIGN(AdapterVersion v, lifecycle_->Get("sentiment-v1"));
  EXPECT_EQ(v.state, AdapterState::kRetired);
  EXPECT_EQ(v.deployment, "prod");
  EXPECT_EQ(v.evaluation_id, "eval-sentiment-v1");
  ASSERT_OK_AND_ASSIGN(auto decisions, lifecycle_->Decisions("sentiment-v1"));
  ASSERT_EQ(decisions.size(), 1u);
  EXPECT_EQ(decisions[0].decision, "approved");
  EXPECT_EQ(decisions[0].actor, "product-owner@example.org");
  EXPECT_EQ(decisions[0].decided_at, "2026-11-29T05:00:02.000Z");  // UTC from the clock
  EXPECT_EQ(decisions[0].risk_class, "limited");
  EXPECT_EQ(decisions[0].note, "reviewed the evaluation report");
  ASSERT_OK_AND_ASSIGN(auto log, lifecycle_->audit().List("adapter", "sentiment-v1"));
  std::vector<std::string> actions;
  for (const auto& e : log) actions.push_back(e.action + ":" + e.from_state + "->" + e.to_state);
  EXPECT_THAT(actions, ElementsAre("register:->trained", "evaluate:trained->evaluated", "approve:evaluated->approved",
                                   "deploy:approved->deployed", "retire:deployed->retired"));
  EXPECT_EQ(log[2].details["risk_class"], "limited");
}

// Every (state, target) pair not in the documented table is refused with
// FAILED_PRECONDITION naming the current state and the allowed ones, and changes nothing.
TEST_F(LifecycleTest, EveryIllegalTransitionIsRefused) {
  const std::vector<AdapterState> all = {AdapterState::kTrained,  AdapterState::kEvaluated, AdapterState::kApproved,
                                         AdapterState::kRejected, AdapterState::kDeployed,  AdapterState::kRetired};
  int refused = 0, id = 0;
  for (AdapterState from : all) {
    for (AdapterState to : all) {
      if (to == AdapterState::kTrained) continue;  // registration is not a transition (ALREADY_EXISTS below)
      const auto allowed = AllowedNextStates(from);
      if (std::find(allowed.begin(), allowed.end(), to) != allowed.end()) continue;
      const std::string name = "a" + std::to_string(id++);
      Reach(name, from);
      ASSERT_OK_AND_ASSIGN(auto before, lifecycle_->audit().List("adapter", name));
      absl::Status s = Attempt(name, to);
      EXPECT_THAT(s, testing::StatusIs(kFailed, AllOf(HasSubstr(std::string("is in state '") + AdapterStateName(from)),
                                                      HasSubstr("allowed: "))))
          << AdapterStateName(from) << " -> " << AdapterStateName(to);
      ASSERT_OK_AND_ASSIGN(AdapterVersion v, lifecycle_->Get(name));
      EXPECT_EQ(v.state, from);
      ASSERT_OK_AND_ASSIGN(auto after, lifecycle_->audit().List("adapter", name));
      EXPECT_EQ(after.size(), before.size()) << "a refused transition must not be audited";
      ++refused;
    }
  }
  EXPECT_EQ(refused, 18);  // 6x5 pairs minus the 12 legal ones (evaluated->deployed is illegal by default)
  EXPECT_THAT(lifecycle_->RegisterTrained("a0", "trainer"), testing::StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("a0")));
  EXPECT_THAT(lifecycle_->MarkEvaluated("ghost", "x", "e"), testing::StatusIs(absl::StatusCode::kNotFound, HasSubstr("ghost")));
}

TEST_F(LifecycleTest, LegalBackTransitions) {
  Reach("r", AdapterState::kRejected);
  ASSERT_OK(lifecycle_->MarkEvaluated("r", "evaluator", "eval-r-2"));  // re-evaluation after rejection
  ASSERT_OK(lifecycle_->Approve("r", Approver()));
  ASSERT_OK(lifecycle_->MarkEvaluated("r", "evaluator", "eval-r-3"));  // re-evaluation revokes approval
  ASSERT_OK_AND_ASSIGN(AdapterVersion v, lifecycle_->Get("r"));
  EXPECT_EQ(v.state, AdapterState::kEvaluated);
  EXPECT_EQ(v.evaluation_id, "eval-r-3");
  ASSERT_OK_AND_ASSIGN(auto decisions, lifecycle_->Decisions("r"));
  ASSERT_EQ(decisions.size(), 2u);
  EXPECT_EQ(decisions[0].evaluation_id, "eval-r");
  EXPECT_EQ(decisions[1].evaluation_id, "eval-r-2");
}

TEST_F(LifecycleTest, DeploymentRequiresApprovalByDefault) {
  Reach("u", AdapterState::kEvaluated);
  EXPECT_THAT(lifecycle_->Deploy("u", "ops", "prod"),
              testing::StatusIs(kFailed, AllOf(HasSubstr("'evaluated'"), HasSubstr("requires approval"))));
  // A deployment whose policy does not require approval may take it...
  DeploymentPolicy lax;
  lax.require_approval = false;
  ASSERT_OK(lifecycle_->Deploy("u", "ops", "staging", lax));
  ASSERT_OK_AND_ASSIGN(auto log, lifecycle_->audit().List("adapter", "u"));
  EXPECT_EQ(log.back().details["require_approval"], false);
  // ...but never a rejected one, whatever the policy.
  Reach("x", AdapterState::kRejected);
  EXPECT_THAT(lifecycle_->Deploy("x", "ops", "staging", lax),
              testing::StatusIs(kFailed, HasSubstr("a rejected adapter is never deployed")));
  Reach("t", AdapterState::kTrained);
  EXPECT_THAT(lifecycle_->Deploy("t", "ops", "staging", lax), testing::StatusIs(kFailed, HasSubstr("'trained'")));
}

TEST_F(LifecycleTest, HighRiskApprovalNeedsDocumentationAndUnacceptableNeverPasses) {
  Reach("h", AdapterState::kEvaluated);
  Decision d = Approver(RiskClass::kHigh);
  EXPECT_THAT(lifecycle_->Approve("h", d),
              testing::StatusIs(absl::StatusCode::kInvalidArgument, AllOf(HasSubstr("documentation_ref"), HasSubstr("Annex III"))));
  ASSERT_OK_AND_ASSIGN(AdapterVersion v, lifecycle_->Get("h"));
  EXPECT_EQ(v.state, AdapterState::kEvaluated);
  d.documentation_ref = "https://docs.example.org/tech-doc/h-v1";
  ASSERT_OK(lifecycle_->Approve("h", d));
  ASSERT_OK_AND_ASSIGN(auto decisions, lifecycle_->Decisions("h"));
  EXPECT_EQ(decisions.back().documentation_ref, "https://docs.example.org/tech-doc/h-v1");
  EXPECT_EQ(decisions.back().risk_class, "high");

  Reach("p", AdapterState::kEvaluated);
  Decision banned = Approver(RiskClass::kUnacceptable);
  banned.documentation_ref = "doc";
  EXPECT_THAT(lifecycle_->Approve("p", banned), testing::StatusIs(kFailed, HasSubstr("Art. 5")));
  Decision no_note = Approver();
  no_note.note.clear();
  EXPECT_THAT(lifecycle_->Reject("p", no_note), testing::StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("note")));
  Decision anonymous = Approver();
  anonymous.actor.clear();
  EXPECT_THAT(lifecycle_->Approve("p", anonymous), testing::StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("actor")));
}

TEST_F(LifecycleTest, AuditAndDecisionsAreAppendOnlyAndSurviveRestart) {
  Reach("s", AdapterState::kDeployed);
  EXPECT_THAT(store_->Exec("UPDATE audit_log SET actor = 'x'"), testing::StatusIs(kFailed, HasSubstr("append-only")));
  EXPECT_THAT(store_->Exec("DELETE FROM audit_log WHERE entity_id = 's'"), testing::StatusIs(kFailed, HasSubstr("append-only")));
  EXPECT_THAT(store_->Exec("UPDATE approval_decisions SET decision = 'rejected'"),
              testing::StatusIs(kFailed, HasSubstr("append-only")));
  EXPECT_THAT(store_->Exec("DELETE FROM approval_decisions"), testing::StatusIs(kFailed, HasSubstr("append-only")));
  Reopen();
  ASSERT_OK_AND_ASSIGN(AdapterVersion v, lifecycle_->Get("s"));
  EXPECT_EQ(v.state, AdapterState::kDeployed);
  ASSERT_OK_AND_ASSIGN(auto log, lifecycle_->audit().List("adapter", "s"));
  EXPECT_EQ(log.size(), 4u);
  EXPECT_EQ(log[2].actor, "product-owner@example.org");
  EXPECT_OK(lifecycle_->audit().VerifyChain());
  // New entries continue the chain after a restart.
  ASSERT_OK(lifecycle_->Retire("s", "ops", "end of life"));
  EXPECT_OK(lifecycle_->audit().VerifyChain());
}

}  // namespace
}  // namespace qlorad::store

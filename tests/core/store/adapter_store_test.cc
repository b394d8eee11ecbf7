// AdapterStore: each write is one transaction with exactly one audit entry; a write that
// fails part-way (a real SQLite failure from a trigger) changes nothing and logs nothing.
#include "core/store/adapter_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/store/audit_log.h"
#include "core/store/daemon_migrations.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

namespace qlorad::store {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class AdapterStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto db = SharedStore::Open(testing::MakeTempDir("adapter_store") + "/qlorad.db", DaemonDatabaseMigrations());
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = *std::move(db);
    adapters_ = std::make_unique<AdapterStore>(db_.get());
  }
  absl::Status Exec(const std::string& sql) {
    return db_->With([&](Store& s) { return s.Exec(sql); });
  }
  std::vector<AuditEntry> Audit(const std::string& id) {
    auto log = db_->Read<std::vector<AuditEntry>>([&](Store& s) { return AuditLog(&s).List("adapter", id); });
    EXPECT_TRUE(log.ok()) << log.status();
    return log.ok() ? *log : std::vector<AuditEntry>{};
  }
  // Registers `id` (name@1) and brings it to `state` through the lifecycle.
  void Reach(const std::string& name, AdapterState state) {
    const std::string id = name + "@1";
    ASSERT_OK(adapters_->Register({id, name, 1, "job-1", "/a/" + name, "fp", "ds", "t0", false}, "trainer", {}));
    if (state == AdapterState::kTrained) return;
    ASSERT_OK(db_->With([&](Store& s) { return AdapterLifecycle(&s).MarkEvaluated(id, "evaluator", "eval-1"); }));
    if (state == AdapterState::kEvaluated) return;
    Decision approve;
    approve.actor = "owner";
    ASSERT_OK(adapters_->Approve(id, approve));
  }
  AdapterState StateOf(const std::string& id) {
    auto version = adapters_->Version(id);
    EXPECT_TRUE(version.ok()) << version.status();
    return version.ok() ? version->state : AdapterState::kRetired;
  }

  std::unique_ptr<SharedStore> db_;
  std::unique_ptr<AdapterStore> adapters_;
};

TEST_F(AdapterStoreTest, PromoteIsOneTransitionWithOneAuditEntry) {
  Reach("s", AdapterState::kApproved);
  const size_t before = Audit("s@1").size();
  ASSERT_OK(adapters_->Promote("s@1", "s:prod", "deployer", {}));
  EXPECT_EQ(StateOf("s@1"), AdapterState::kDeployed);
  ASSERT_OK_AND_ASSIGN(AdapterRow row, adapters_->Get("s@1"));
  EXPECT_TRUE(row.loaded);
  ASSERT_OK_AND_ASSIGN(auto target, adapters_->ResolveAlias("s:prod"));
  EXPECT_EQ(target, std::optional<std::string>("s@1"));
  const std::vector<AuditEntry> log = Audit("s@1");
  ASSERT_EQ(log.size(), before + 1) << "exactly one audit entry per promote";
  EXPECT_EQ(log.back().action, "promote_deploy");
  EXPECT_EQ(log.back().actor, "deployer");
  EXPECT_EQ(log.back().from_state, "approved");
  EXPECT_EQ(log.back().to_state, "deployed");
  EXPECT_EQ(log.back().details.value("alias", ""), "s:prod");
  ASSERT_OK(db_->With([](Store& s) { return AuditLog(&s).VerifyChain(); }));
}

TEST_F(AdapterStoreTest, PromoteWhoseAliasWriteFailsChangesNothing) {
  Reach("s", AdapterState::kApproved);
  const size_t before = Audit("s@1").size();
  ASSERT_OK(Exec("CREATE TRIGGER aliases_refused BEFORE INSERT ON aliases "
                 "BEGIN SELECT RAISE(ABORT, 'alias table refused by the test'); END;"));
  EXPECT_THAT(adapters_->Promote("s@1", "s:prod", "deployer", {}),
              testing::StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("alias table refused")));
  EXPECT_EQ(StateOf("s@1"), AdapterState::kApproved);
  ASSERT_OK_AND_ASSIGN(AdapterRow row, adapters_->Get("s@1"));
  EXPECT_FALSE(row.loaded);
  ASSERT_OK_AND_ASSIGN(auto target, adapters_->ResolveAlias("s:prod"));
  EXPECT_FALSE(target.has_value());
  EXPECT_EQ(Audit("s@1").size(), before);
  // The same promote succeeds once the failure is gone: nothing half-done was left behind.
  ASSERT_OK(Exec("DROP TRIGGER aliases_refused"));
  ASSERT_OK(adapters_->Promote("s@1", "s:prod", "deployer", {}));
  EXPECT_EQ(Audit("s@1").size(), before + 1);
}

TEST_F(AdapterStoreTest, PromoteRefusedByPolicyChangesNothing) {
  Reach("s", AdapterState::kEvaluated);
  const size_t before = Audit("s@1").size();
  EXPECT_THAT(adapters_->Promote("s@1", "s:prod", "deployer", {}),
              testing::StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("approv")));
  EXPECT_EQ(StateOf("s@1"), AdapterState::kEvaluated);
  ASSERT_OK_AND_ASSIGN(AdapterRow row, adapters_->Get("s@1"));
  EXPECT_FALSE(row.loaded);
  EXPECT_EQ(Audit("s@1").size(), before);
  EXPECT_THAT(adapters_->Promote("s@1", "bad@alias", "deployer", {}), testing::StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
}

TEST_F(AdapterStoreTest, RepromoteAndAliasMoveAreOneEntryEach) {
  Reach("a", AdapterState::kApproved);
  Reach("b", AdapterState::kApproved);
  ASSERT_OK(adapters_->Promote("a@1", "prod", "ops", {}));
  size_t a_before = Audit("a@1").size();
  ASSERT_OK(adapters_->Promote("a@1", "canary", "ops", {}));  // already deployed: alias only
  std::vector<AuditEntry> log = Audit("a@1");
  ASSERT_EQ(log.size(), a_before + 1);
  EXPECT_EQ(log.back().action, "promote");
  EXPECT_EQ(log.back().from_state, "deployed");
  EXPECT_EQ(log.back().to_state, "deployed");
  ASSERT_OK_AND_ASSIGN(auto aliases, adapters_->AliasesOf("a@1"));
  EXPECT_THAT(aliases, ElementsAre("canary", "prod"));

  a_before = Audit("a@1").size();
  const size_t b_before = Audit("b@1").size();
  ASSERT_OK(adapters_->Promote("b@1", "prod", "ops", {}));  // moves prod from a to b
  EXPECT_EQ(Audit("a@1").size(), a_before);
  log = Audit("b@1");
  ASSERT_EQ(log.size(), b_before + 1);
  EXPECT_EQ(log.back().details.value("previous_target", ""), "a@1");
  ASSERT_OK_AND_ASSIGN(auto target, adapters_->ResolveAlias("prod"));
  EXPECT_EQ(target, std::optional<std::string>("b@1"));
}

TEST_F(AdapterStoreTest, DeleteRetiresInOneTransactionAndNeverReusesTheVersion) {
  Reach("s", AdapterState::kApproved);
  ASSERT_OK(adapters_->Promote("s@1", "prod", "ops", {}));
  size_t before = Audit("s@1").size();
  EXPECT_THAT(adapters_->Delete("s@1", "ops", {}),
              testing::StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("alias")));
  EXPECT_EQ(Audit("s@1").size(), before);
  Reach("t", AdapterState::kApproved);
  ASSERT_OK(adapters_->Promote("t@1", "prod", "ops", {}));  // the alias moves away from s@1

  ASSERT_OK(Exec("CREATE TRIGGER adapters_kept BEFORE DELETE ON adapters "
                 "BEGIN SELECT RAISE(ABORT, 'delete refused by the test'); END;"));
  before = Audit("s@1").size();
  EXPECT_THAT(adapters_->Delete("s@1", "ops", {}), testing::StatusIs(absl::StatusCode::kFailedPrecondition, ::testing::_));
  EXPECT_EQ(StateOf("s@1"), AdapterState::kDeployed);
  EXPECT_EQ(Audit("s@1").size(), before);
  ASSERT_OK(Exec("DROP TRIGGER adapters_kept"));

  ASSERT_OK(adapters_->Delete("s@1", "ops", {{"path", "/a/s"}}));
  EXPECT_THAT(adapters_->Get("s@1"), testing::StatusIs(absl::StatusCode::kNotFound, ::testing::_));
  EXPECT_EQ(StateOf("s@1"), AdapterState::kRetired);
  const std::vector<AuditEntry> log = Audit("s@1");
  ASSERT_EQ(log.size(), before + 1);
  EXPECT_EQ(log.back().action, "delete");
  EXPECT_EQ(log.back().from_state, "deployed");
  EXPECT_EQ(log.back().to_state, "retired");
  ASSERT_OK_AND_ASSIGN(int64_t next, adapters_->NextVersion("s"));
  EXPECT_EQ(next, 2) << "a deleted version's id stays taken (its lifecycle and audit history remain)";
}

TEST_F(AdapterStoreTest, RegisterIsRowAndLifecycleTogether) {
  ASSERT_OK_AND_ASSIGN(int64_t first, adapters_->NextVersion("n"));
  EXPECT_EQ(first, 1);
  ASSERT_OK(db_->With([](Store& s) { return AdapterLifecycle(&s).RegisterTrained("n@1", "someone"); }));
  EXPECT_THAT(adapters_->Register({"n@1", "n", 1, "", "/a/n", "fp", "", "t0", false}, "trainer", {}),
              testing::StatusIs(absl::StatusCode::kAlreadyExists, ::testing::_));
  EXPECT_THAT(adapters_->Get("n@1"), testing::StatusIs(absl::StatusCode::kNotFound, ::testing::_)) << "the row went with the refusal";
  ASSERT_OK_AND_ASSIGN(int64_t next, adapters_->NextVersion("n"));
  EXPECT_EQ(next, 2);
  ASSERT_OK(adapters_->Register({"n@2", "n", 2, "job-2", "/a/n2", "fp", "ds", "t0", false}, "trainer",
                                {{"job_id", "job-2"}}));
  const std::vector<AuditEntry> log = Audit("n@2");
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].action, "register");
  EXPECT_EQ(log[0].to_state, "trained");
  EXPECT_EQ(StateOf("n@2"), AdapterState::kTrained);
}

TEST_F(AdapterStoreTest, LoadedFlagAndDecisionsAreAuditedOnce) {
  Reach("s", AdapterState::kEvaluated);
  size_t before = Audit("s@1").size();
  ASSERT_OK(adapters_->SetLoaded("s@1", true, "ops", "load", {{"pin", false}}));
  ASSERT_OK_AND_ASSIGN(AdapterRow row, adapters_->Get("s@1"));
  EXPECT_TRUE(row.loaded);
  EXPECT_EQ(Audit("s@1").size(), before + 1);
  EXPECT_THAT(adapters_->SetLoaded("nope@1", true, "ops", "load", {}), testing::StatusIs(absl::StatusCode::kNotFound, ::testing::_));
  EXPECT_THAT(Audit("nope@1"), IsEmpty());
  before = Audit("s@1").size();
  Decision reject;
  reject.actor = "owner";
  reject.note = "worse on the hold-out";
  ASSERT_OK(adapters_->Reject("s@1", reject));
  const std::vector<AuditEntry> log = Audit("s@1");
  ASSERT_EQ(log.size(), before + 1);
  EXPECT_EQ(log.back().action, "reject");
}

}  // namespace
}  // namespace qlorad::store

#include "core/store/store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "core/store/audit_log.h"
#include "core/store/migrations.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

namespace qlorad::store {
namespace {

using ::testing::HasSubstr;

std::string DbPath() { return testing::MakeTempDir("store") + "/qlorad.db"; }

TEST(StoreTest, OpensWithWalAndAppliesMigrationsOnce) {
  const std::string path = DbPath();
  {
    ASSERT_OK_AND_ASSIGN(auto store, Store::Open(path, CoreMigrations()));
    EXPECT_EQ(store->journal_mode(), "wal");
    EXPECT_EQ(store->schema_version(), 3);
  }
  // Reopen with an extra (daemon-style) migration: only the new one runs.
  std::vector<Migration> more = CoreMigrations();
  more.push_back({kFirstDaemonMigrationVersion, "jobs", "CREATE TABLE jobs (id TEXT PRIMARY KEY);"});
  ASSERT_OK_AND_ASSIGN(auto store, Store::Open(path, more));
  EXPECT_EQ(store->schema_version(), kFirstDaemonMigrationVersion);
  ASSERT_OK_AND_ASSIGN(auto st, store->Prepare("SELECT version, name FROM schema_migrations ORDER BY version"));
  std::vector<std::string> names;
  while (true) {
    ASSERT_OK_AND_ASSIGN(bool row, st.Step());
    if (!row) break;
    names.push_back(st.ColumnText(1));
  }
  EXPECT_THAT(names, ::testing::ElementsAre("audit_log", "adapter_lifecycle", "evaluation_records", "jobs"));
}

TEST(StoreTest, RefusesNewerSchemaAndDivergedHistory) {
  const std::string path = DbPath();
  std::vector<Migration> more = CoreMigrations();
  more.push_back({100, "jobs", "CREATE TABLE jobs (id TEXT);"});
  { ASSERT_OK(Store::Open(path, more).status()); }
  EXPECT_THAT(Store::Open(path, CoreMigrations()),
              testing::StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("newer than this binary knows")));
  more.back().name = "jobs_v2";
  EXPECT_THAT(Store::Open(path, more),
              testing::StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("schema history diverged")));
  EXPECT_THAT(Store::Open(DbPath(), {{2, "b", ""}, {1, "a", ""}}),
              testing::StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("strictly increasing")));
}

TEST(StoreTest, FailedMigrationLeavesNoTrace) {
  const std::string path = DbPath();
  std::vector<Migration> bad = CoreMigrations();
  bad.push_back({100, "broken", "CREATE TABLE t (x); THIS IS NOT SQL;"});
  EXPECT_THAT(Store::Open(path, bad), testing::StatusIs(absl::StatusCode::kInternal, HasSubstr("migration 100")));
  ASSERT_OK_AND_ASSIGN(auto store, Store::Open(path, CoreMigrations()));
  EXPECT_EQ(store->schema_version(), 3);
  EXPECT_THAT(store->Exec("SELECT * FROM t"), testing::StatusIs(absl::StatusCode::kInternal, HasSubstr("no such table")));
}

TEST(StoreTest, TransactionRollsBackOnError) {
  ASSERT_OK_AND_ASSIGN(auto store, Store::Open(DbPath(), {{1, "kv", "CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT);"}}));
  ASSERT_OK(store->Exec("INSERT INTO kv VALUES ('a', '1')"));
  absl::Status s = store->InTransaction([&]() -> absl::Status {
    if (absl::Status e = store->Exec("UPDATE kv SET v = '2' WHERE k = 'a'"); !e.ok()) return e;
    // A nested transaction (savepoint) that fails is rolled back on its own...
    EXPECT_FALSE(store->InTransaction([&] {
                        (void)store->Exec("INSERT INTO kv VALUES ('b', '1')");
                        return absl::AbortedError("inner");
                      }).ok());
    return absl::CancelledError("outer fails too");
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kCancelled);
  ASSERT_OK_AND_ASSIGN(auto st, store->Prepare("SELECT group_concat(k || '=' || v) FROM kv"));
  ASSERT_OK_AND_ASSIGN(bool row, st.Step());
  ASSERT_TRUE(row);
  EXPECT_EQ(st.ColumnText(0), "a=1");
}

// Another connection's write lock: a write waits attempts x timeout_ms, then fails
// UNAVAILABLE naming the database and changing nothing; released within the bound, it succeeds.
TEST(StoreTest, BusyDatabaseIsRetriedWithinTheBoundThenRefused) {
  const std::string path = DbPath();
  const BusyPolicy busy{50, 3};
  ASSERT_OK_AND_ASSIGN(auto store, Store::Open(path, CoreMigrations(), busy));
  ASSERT_OK(store->Exec("CREATE TABLE t (x INTEGER)"));
  ASSERT_OK_AND_ASSIGN(auto holder, Store::Open(path, CoreMigrations()));
  ASSERT_OK(holder->Exec("BEGIN IMMEDIATE"));
  const auto started = std::chrono::steady_clock::now();
  EXPECT_THAT(store->InTransaction([&] { return store->Exec("INSERT INTO t VALUES (1)"); }),
              testing::StatusIs(absl::StatusCode::kUnavailable, HasSubstr(path)));
  EXPECT_GE(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(140));
  ASSERT_OK_AND_ASSIGN(auto insert, store->Prepare("INSERT INTO t VALUES (2)"));
  EXPECT_THAT(insert.Run(), testing::StatusIs(absl::StatusCode::kUnavailable, HasSubstr("3 attempt(s) of 50 ms")));
  ASSERT_OK(holder->Exec("COMMIT"));
  ASSERT_OK_AND_ASSIGN(auto count, store->Prepare("SELECT COUNT(*) FROM t"));
  ASSERT_OK_AND_ASSIGN(bool row, count.Step());
  ASSERT_TRUE(row);
  EXPECT_EQ(count.ColumnInt64(0), 0);  // nothing of the refused writes
  count.Reset();

  ASSERT_OK(holder->Exec("BEGIN IMMEDIATE"));
  std::thread release([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(80));  // within the 150 ms bound
    (void)holder->Exec("COMMIT");
  });
  EXPECT_OK(store->InTransaction([&] { return store->Exec("INSERT INTO t VALUES (3)"); }));
  release.join();
  insert.Reset();
  EXPECT_OK(insert.Run());
}

TEST(AuditLogTest, AppendOnlyEnforcedByTriggersAndSurvivesReopen) {
  const std::string path = DbPath();
  {
    ASSERT_OK_AND_ASSIGN(auto store, Store::Open(path, CoreMigrations()));
    AuditLog log(store.get());
    for (int i = 0; i < 3; ++i) {
      AuditEntry e;
      e.at = "2026-11-29T05:00:0" + std::to_string(i) + "Z";
      e.actor = "tester";
      e.entity_type = "adapter";
      e.entity_id = "a1";
      e.action = "note";
      e.details = {{"i", i}};
      ASSERT_OK_AND_ASSIGN(AuditEntry got, log.Append(e));
      EXPECT_EQ(got.seq, i + 1);
    }
    EXPECT_THAT(store->Exec("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2"),
                testing::StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("append-only: UPDATE refused")));
    EXPECT_THAT(store->Exec("DELETE FROM audit_log WHERE seq = 1"),
                testing::StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("append-only: DELETE refused")));
    EXPECT_THAT(store->Exec("DELETE FROM audit_log"),
                testing::StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("append-only")));
    AuditEntry empty;
    EXPECT_THAT(log.Append(empty), testing::StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'at'")));
  }
  ASSERT_OK_AND_ASSIGN(auto store, Store::Open(path, CoreMigrations()));
  AuditLog log(store.get());
  ASSERT_OK_AND_ASSIGN(auto entries, log.List());
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries[1].actor, "tester");
  EXPECT_EQ(entries[2].details["i"], 2);
  EXPECT_OK(log.VerifyChain());
  // Someone bypassing the API (dropping the trigger) is still detected by the hash chain.
  ASSERT_OK(store->Exec("DROP TRIGGER audit_log_no_update; UPDATE audit_log SET actor = 'mallory' WHERE seq = 2"));
  EXPECT_THAT(log.VerifyChain(), testing::StatusIs(absl::StatusCode::kDataLoss, HasSubstr("entry 2")));
}

}  // namespace
}  // namespace qlorad::store

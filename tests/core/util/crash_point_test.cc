// The crash hook: spec parsing, the n-th hit of a named point (or of any point) raising
// SIGKILL, the trace file, and Store's commit point leaving exactly the commits before
// the n-th on disk. The killing cases run in gtest death-test children (the environment
// is read once per process, so each child sets it before its first CrashPoint).
#include "core/util/crash_point.h"

#include <sqlite3.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/store/store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace qlorad {
namespace {

using ::testing::HasSubstr;

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TMPDIR");
  return absl::StrCat(dir != nullptr ? dir : "/tmp", "/qlorad-crash-", ::getpid(), "-", name);
}

TEST(ParseCrashSpec, AcceptsNamedAndAnyPoint) {
  absl::StatusOr<CrashSpec> spec = ParseCrashSpec("store.commit:7");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->point, "store.commit");
  EXPECT_EQ(spec->hit, 7);
  spec = ParseCrashSpec("*:1");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->point, "*");
  EXPECT_EQ(spec->hit, 1);
  spec = ParseCrashSpec("a:b:12");  // the last ':' separates the number
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->point, "a:b");
  EXPECT_EQ(spec->hit, 12);
}

TEST(ParseCrashSpec, RefusesMalformedValuesNamingTheVariable) {
  for (const char* bad : {"store.commit", ":3", "store.commit:", "store.commit:0", "store.commit:-2",
                          "store.commit:x", "store.commit:3x"}) {
    absl::StatusOr<CrashSpec> spec = ParseCrashSpec(bad);
    ASSERT_FALSE(spec.ok()) << bad;
    EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(spec.status().message(), HasSubstr("QLORAD_TEST_CRASH_AT")) << bad;
  }
}

TEST(CrashPointDeathTest, KillsAtTheNthHitOfTheNamedPointOnly) {
  EXPECT_EXIT(
      {
        ::setenv("QLORAD_TEST_CRASH_AT", "p:3", 1);
        CrashPoint("p");
        CrashPoint("q");
        CrashPoint("q");
        CrashPoint("p");
        std::fprintf(stderr, "survived two hits of p\n");
        CrashPoint("p");
        std::fprintf(stderr, "survived the third hit of p\n");
        std::_Exit(0);
      },
      ::testing::KilledBySignal(SIGKILL), "survived two hits of p");
}

TEST(CrashPointDeathTest, StarCountsTheHitsOfAllPoints) {
  EXPECT_EXIT(
      {
        ::setenv("QLORAD_TEST_CRASH_AT", "*:3", 1);
        CrashPoint("p");
        CrashPoint("q");
        std::fprintf(stderr, "survived two hits\n");
        CrashPoint("r");
        std::_Exit(0);
      },
      ::testing::KilledBySignal(SIGKILL), "survived two hits");
}

TEST(CrashPointDeathTest, MalformedSpecAbortsLoudly) {
  EXPECT_DEATH(
      {
        ::setenv("QLORAD_TEST_CRASH_AT", "store.commit:zero", 1);
        CrashPoint("store.commit");
      },
      "QLORAD_TEST_CRASH_AT='store.commit:zero'");
}

TEST(CrashPointDeathTest, UnsetIsInertAndTraceNumbersEveryHit) {
  const std::string trace = TempPath("trace");
  std::remove(trace.c_str());
  EXPECT_EXIT(
      {
        ::unsetenv("QLORAD_TEST_CRASH_AT");
        ::setenv("QLORAD_TEST_CRASH_TRACE", trace.c_str(), 1);
        for (int i = 0; i < 100; ++i) CrashPoint(i % 2 == 0 ? "even" : "odd");
        std::_Exit(7);
      },
      ::testing::ExitedWithCode(7), "");
  std::ifstream in(trace);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    EXPECT_EQ(line, absl::StrCat(n, " ", n % 2 == 1 ? "even" : "odd"));
  }
  EXPECT_EQ(n, 100);
  std::remove(trace.c_str());
}

int64_t CountRows(const std::string& path) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM t", -1, &st, nullptr), SQLITE_OK);
  EXPECT_EQ(sqlite3_step(st), SQLITE_ROW);
  const int64_t n = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return n;
}

// Store::Open commits a few times (schema table, migrations): a traced probe run counts them.
TEST(StoreCommitPointDeathTest, KillsJustBeforeTheNthCommitLeavingTheEarlierOnes) {
  const std::string path = TempPath("store.db");
  for (const char* suffix : {"", "-wal", "-shm"}) std::remove((path + suffix).c_str());
  const std::vector<store::Migration> migrations = {{1, "t", "CREATE TABLE t (x INTEGER)"}};
  int64_t open_commits = 0;
  {  // a traced run without a crash counts the commits Open makes
    const std::string trace = TempPath("open-trace");
    std::remove(trace.c_str());
    EXPECT_EXIT(
        {
          ::setenv("QLORAD_TEST_CRASH_TRACE", trace.c_str(), 1);
          auto s = store::Store::Open(path + ".probe", migrations);
          std::_Exit(s.ok() ? 0 : 1);
        },
        ::testing::ExitedWithCode(0), "");
    std::ifstream in(trace);
    for (std::string line; std::getline(in, line);) ++open_commits;
    for (const char* suffix : {"", "-wal", "-shm"}) std::remove((path + ".probe" + suffix).c_str());
    std::remove(trace.c_str());
  }
  ASSERT_GE(open_commits, 1);
  // Commit 1..open_commits: Open; then one autocommit INSERT, then transactions of 2 rows.
  const int64_t crash_at = open_commits + 3;  // the third write commit
  EXPECT_EXIT(
      {
        ::setenv("QLORAD_TEST_CRASH_AT", absl::StrCat("store.commit:", crash_at).c_str(), 1);
        auto s = store::Store::Open(path, migrations);
        if (!s.ok()) std::_Exit(1);
        (void)(*s)->Exec("INSERT INTO t VALUES (1)");
        for (int i = 0; i < 3; ++i) {
          (void)(*s)->InTransaction([&] { return (*s)->Exec("INSERT INTO t VALUES (2); INSERT INTO t VALUES (3)"); });
        }
        std::_Exit(0);
      },
      ::testing::KilledBySignal(SIGKILL), "");
  EXPECT_EQ(CountRows(path), 1 + 2);  // the autocommit row and the first transaction; not the second
  for (const char* suffix : {"", "-wal", "-shm"}) std::remove((path + suffix).c_str());
}

}  // namespace
}  // namespace qlorad

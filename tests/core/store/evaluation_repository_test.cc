#include "core/store/evaluation_repository.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/store/migrations.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

namespace qlorad::store {
namespace {

using ::testing::HasSubstr;

TEST(EvaluationRepositoryTest, BaselineReusedPerKeyAndRecordsImmutable) {
  const std::string path = testing::MakeTempDir("evalrepo") + "/qlorad.db";
  {
    ASSERT_OK_AND_ASSIGN(auto store, Store::Open(path, CoreMigrations()));
    EvaluationRepository repo(store.get());
    ASSERT_OK(repo.Put({"base-1", "key-A", "", "2026-11-29T05:00:00.000Z", R"({"n":1})"}));
    ASSERT_OK(repo.Put({"base-2", "key-A", "", "2026-11-29T06:00:00.000Z", R"({"n":2})"}));
    ASSERT_OK(repo.Put({"base-3", "key-B", "", "2026-11-29T07:00:00.000Z", R"({"n":3})"}));
    ASSERT_OK(repo.Put({"ad-1", "key-A", "sentiment-v1", "2026-11-29T06:30:00.000Z", R"({"n":4})"}));
    EXPECT_THAT(repo.Put({"ad-1", "key-A", "x", "t", "{}"}),
                testing::StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("ad-1")));
    EXPECT_THAT(repo.Put({"x", "", "", "t", "{}"}),
                testing::StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("baseline_key")));
    EXPECT_THAT(store->Exec("UPDATE evaluation_records SET record_json = '{}'"),
                testing::StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("immutable")));
  }
  ASSERT_OK_AND_ASSIGN(auto store, Store::Open(path, CoreMigrations()));
  EvaluationRepository repo(store.get());
  ASSERT_OK_AND_ASSIGN(auto baseline, repo.FindLatestBaseline("key-A"));
  ASSERT_TRUE(baseline.has_value());
  EXPECT_EQ(baseline->id, "base-2");  // newest baseline for the triple, never the adapter's record
  ASSERT_OK_AND_ASSIGN(auto none, repo.FindLatestBaseline("key-Z"));
  EXPECT_FALSE(none.has_value());
  ASSERT_OK_AND_ASSIGN(auto adapter, repo.ListForAdapter("sentiment-v1"));
  ASSERT_EQ(adapter.size(), 1u);
  EXPECT_EQ(adapter[0].record_json, R"({"n":4})");
  EXPECT_THAT(repo.Get("nope"), testing::StatusIs(absl::StatusCode::kNotFound, HasSubstr("nope")));
}

}  // namespace
}  // namespace qlorad::store

#include "core/monitor/drift_monitor.h"

#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace qlorad::monitor {
namespace {

using ::qlorad::testing::StatusIs;
using ::testing::_;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Key;

std::shared_ptr<const DriftProfile> Profile(int32_t base) {
  std::vector<PromptSample> prompts;
  for (int i = 0; i < 50; ++i) prompts.push_back(PromptSample{{base + i % 5, base + 1}, {}});
  auto p = DriftProfile::Build(prompts);
  EXPECT_TRUE(p.ok()) << p.status();
  return std::make_shared<const DriftProfile>(*std::move(p));
}

TEST(DriftMonitorTest, PerAdapterWindowsAgainstTheirOwnProfiles) {
  DriftMonitor monitor;
  ASSERT_OK(monitor.SetReference("a", Profile(0)));
  ASSERT_OK(monitor.SetReference("b", Profile(100)));
  EXPECT_EQ(monitor.num_adapters(), 2u);
  // The same traffic is in-distribution for "a" and fully shifted for "b".
  for (int i = 0; i < 50; ++i) {
    ASSERT_OK(monitor.Record("a", PromptSample{{i % 5, 1}, {}}));
    ASSERT_OK(monitor.Record("b", PromptSample{{i % 5, 1}, {}}));
  }
  std::map<std::string, DriftReport> reports = monitor.ComputeAll();
  ASSERT_THAT(reports, ElementsAre(Key("a"), Key("b")));
  EXPECT_EQ(reports["a"].band, DriftBand::kStable);
  EXPECT_EQ(reports["b"].band, DriftBand::kSignificant);
  EXPECT_EQ(reports["b"].rare_token_rate, 1.0);
}

TEST(DriftMonitorTest, UnknownAdaptersAndEmptyWindows) {
  DriftMonitor monitor;
  EXPECT_THAT(monitor.Record("nope", PromptSample{{1}, {}}),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("nope")));
  EXPECT_THAT(monitor.Compute("nope"), StatusIs(absl::StatusCode::kNotFound, _));
  EXPECT_THAT(monitor.SetReference("", Profile(0)), StatusIs(absl::StatusCode::kInvalidArgument, _));
  EXPECT_THAT(monitor.SetReference("x", nullptr), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'x'")));
  ASSERT_OK(monitor.SetReference("a", Profile(0)));
  EXPECT_THAT(monitor.Compute("a"), StatusIs(absl::StatusCode::kFailedPrecondition, _));
  EXPECT_TRUE(monitor.ComputeAll().empty());  // empty windows are left out
}

TEST(DriftMonitorTest, NewReferenceStartsAFreshWindowAndRemoveStops) {
  DriftMonitor monitor;
  ASSERT_OK(monitor.SetReference("a", Profile(0)));
  ASSERT_OK(monitor.Record("a", PromptSample{{1}, {}}));
  ASSERT_OK_AND_ASSIGN(DriftReport r, monitor.Compute("a"));
  EXPECT_EQ(r.window_size, 1);
  ASSERT_OK(monitor.SetReference("a", Profile(100)));  // adapter retrained
  EXPECT_THAT(monitor.Compute("a"), StatusIs(absl::StatusCode::kFailedPrecondition, _));
  monitor.Remove("a");
  EXPECT_THAT(monitor.Record("a", PromptSample{{1}, {}}), StatusIs(absl::StatusCode::kNotFound, _));
  EXPECT_EQ(monitor.num_adapters(), 0u);
}

TEST(DriftMonitorTest, ConcurrentRecordComputeAndReplace) {
  DriftWindowOptions o;
  o.max_prompts = 32;
  DriftMonitor monitor(o);
  ASSERT_OK(monitor.SetReference("a", Profile(0)));
  ASSERT_OK(monitor.SetReference("b", Profile(0)));
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 3000; ++i) {
        EXPECT_OK(monitor.Record(i % 2 ? "a" : "b", PromptSample{{(t + i) % 7}, {}}));
      }
    });
  }
  threads.emplace_back([&] {
    for (int i = 0; i < 200; ++i) {
      for (const auto& [name, r] : monitor.ComputeAll()) EXPECT_LE(r.window_size, 32);
      if (i % 50 == 0) {
        EXPECT_OK(monitor.SetReference("b", Profile(0)));
      }
    }
  });
  for (auto& th : threads) th.join();
  ASSERT_OK_AND_ASSIGN(DriftReport a, monitor.Compute("a"));
  EXPECT_EQ(a.window_size, 32);
}

}  // namespace
}  // namespace qlorad::monitor

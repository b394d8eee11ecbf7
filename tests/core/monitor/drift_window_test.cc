#include "core/monitor/drift_window.h"

#include <atomic>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace qlorad::monitor {
namespace {

using ::qlorad::testing::StatusIs;
using ::testing::_;
using ::testing::HasSubstr;

std::shared_ptr<const DriftProfile> Reference() {
  std::vector<PromptSample> prompts;
  for (int i = 0; i < 100; ++i) prompts.push_back(PromptSample{{i % 10, (i + 1) % 10, 5}, {1.0f, 0.5f}});
  auto p = DriftProfile::Build(prompts);
  EXPECT_TRUE(p.ok()) << p.status();
  return std::make_shared<const DriftProfile>(*std::move(p));
}

TEST(DriftWindowTest, CreateValidatesOptions) {
  EXPECT_THAT(DriftWindow::Create(nullptr), StatusIs(absl::StatusCode::kInvalidArgument, _));
  DriftWindowOptions o;
  o.max_prompts = 0;
  EXPECT_THAT(DriftWindow::Create(Reference(), o), StatusIs(absl::StatusCode::kInvalidArgument, _));
  o.max_prompts = 5;
  o.max_age = absl::ZeroDuration();
  EXPECT_THAT(DriftWindow::Create(Reference(), o),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_age")));
}

TEST(DriftWindowTest, KeepsTheNewestMaxPrompts) {
  DriftWindowOptions o;
  o.max_prompts = 3;
  ASSERT_OK_AND_ASSIGN(auto w, DriftWindow::Create(Reference(), o));
  EXPECT_THAT(w->ComputeReport(), StatusIs(absl::StatusCode::kFailedPrecondition, _));
  for (int i = 0; i < 5; ++i) ASSERT_OK(w->Add(PromptSample{{i}, {}}));
  DriftWindow::Snapshot s = w->TakeSnapshot();
  ASSERT_EQ(s.prompts.size(), 3u);
  EXPECT_EQ(s.total_added, 5u);
  EXPECT_EQ(s.prompts[0]->token_ids[0], 2);
  EXPECT_EQ(s.prompts[2]->token_ids[0], 4);
  ASSERT_OK_AND_ASSIGN(DriftReport r, w->ComputeReport());
  EXPECT_EQ(r.window_size, 3);
  w->Clear();
  EXPECT_EQ(w->size(), 0u);
}

TEST(DriftWindowTest, ExpiresPromptsOlderThanMaxAge) {
  absl::Time now = absl::FromUnixSeconds(1000);
  DriftWindowOptions o;
  o.max_age = absl::Seconds(60);
  o.clock = [&now] { return now; };
  ASSERT_OK_AND_ASSIGN(auto w, DriftWindow::Create(Reference(), o));
  ASSERT_OK(w->Add(PromptSample{{1}, {}}));
  now += absl::Seconds(30);
  ASSERT_OK(w->Add(PromptSample{{2}, {}}));
  EXPECT_EQ(w->TakeSnapshot().prompts.size(), 2u);
  now += absl::Seconds(31);  // the first is now 61 s old
  DriftWindow::Snapshot s = w->TakeSnapshot();
  ASSERT_EQ(s.prompts.size(), 1u);
  EXPECT_EQ(s.prompts[0]->token_ids[0], 2);
  now += absl::Seconds(60);
  EXPECT_TRUE(w->TakeSnapshot().prompts.empty());
  EXPECT_THAT(w->ComputeReport(), StatusIs(absl::StatusCode::kFailedPrecondition, _));
}

TEST(DriftWindowTest, AddRejectsBadPromptsAndRecordsNothing) {
  ASSERT_OK_AND_ASSIGN(auto w, DriftWindow::Create(Reference()));
  EXPECT_THAT(w->Add(PromptSample{{1, -2}, {}}), StatusIs(absl::StatusCode::kInvalidArgument, _));
  EXPECT_THAT(w->Add(PromptSample{{1}, {1, 2, 3}}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("dimension 3")));
  EXPECT_EQ(w->size(), 0u);
}

TEST(DriftWindowTest, SnapshotIsUnaffectedByLaterAdds) {
  DriftWindowOptions o;
  o.max_prompts = 2;
  ASSERT_OK_AND_ASSIGN(auto w, DriftWindow::Create(Reference(), o));
  ASSERT_OK(w->Add(PromptSample{{1}, {}}));
  ASSERT_OK(w->Add(PromptSample{{2}, {}}));
  DriftWindow::Snapshot s = w->TakeSnapshot();
  ASSERT_OK(w->Add(PromptSample{{3}, {}}));
  ASSERT_OK(w->Add(PromptSample{{4}, {}}));
  ASSERT_EQ(s.prompts.size(), 2u);
  EXPECT_EQ(s.prompts[0]->token_ids[0], 1);  // pinned by the snapshot
  EXPECT_EQ(s.prompts[1]->token_ids[0], 2);
}

TEST(DriftWindowTest, ConcurrentAddsAndReports) {
  DriftWindowOptions o;
  o.max_prompts = 64;
  ASSERT_OK_AND_ASSIGN(auto w, DriftWindow::Create(Reference(), o));
  std::atomic<bool> stop{false};
  std::atomic<int> reports{0};
  std::thread reader([&] {
    // Keeps going until the writers are done AND it has reported a few times
    // (on a loaded machine it may not run at all before the writers finish).
    while (!stop.load() || reports.load() < 10) {
      auto r = w->ComputeReport();
      if (r.ok()) {
        EXPECT_LE(r->window_size, 64);
        ++reports;
      }
    }
  });
  std::vector<std::thread> writers;
  for (int t = 0; t < 4; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        EXPECT_OK(w->Add(PromptSample{{(t * 7 + i) % 30, i % 10}, {1.0f, 0.25f * (i % 4)}}));
      }
    });
  }
  for (auto& th : writers) th.join();
  stop = true;
  reader.join();
  DriftWindow::Snapshot s = w->TakeSnapshot();
  EXPECT_EQ(s.total_added, 8000u);
  EXPECT_EQ(s.prompts.size(), 64u);
  ASSERT_OK_AND_ASSIGN(DriftReport r, w->ComputeReport());
  EXPECT_EQ(r.window_size, 64);
  EXPECT_TRUE(r.has_embedding_distance);
  EXPECT_GT(reports.load(), 0);
}

}  // namespace
}  // namespace qlorad::monitor

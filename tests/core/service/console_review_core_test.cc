// InteractiveReview (the review console's core) over a real SQLite store in a temp
// directory: save / replace / resume, field errors, submission refused while items are
// unrated and frozen afterwards, blind labels hidden until the reviewer submits, the
// summary over every submitted reviewer (Cohen's kappa against scikit-learn, the win
// rate's Wilson interval against its closed form: tests/reference/console_review_reference.py),
// the audit trail, a re-export resetting the work, and decision evidence in the audit log.
#include "core/service/interactive_review.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/eval/review.h"
#include "core/store/adapter_store.h"
#include "core/store/daemon_migrations.h"
#include "core/store/evaluation_repository.h"
#include "core/store/review_repository.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

namespace qlorad::service {
namespace {

using ::testing::HasSubstr;
using testing::StatusIs;

constexpr char kEval[] = "eval-1";
constexpr int kItems = 10;

// The judgements of tests/reference/console_review_reference.py (de-blinded).
struct Intent {
  std::vector<int> baseline, adapter;
  std::vector<std::string> pref;
};
const Intent kAlice{{3, 2, 3, 1, 2, 4, 4, 5, 3, 3}, {5, 4, 4, 3, 4, 4, 2, 3, 3, 3},
                    {"adapter", "adapter", "adapter", "adapter", "adapter", "adapter", "baseline", "baseline", "tie", "tie"}};
const Intent kBob{{3, 3, 3, 1, 2, 4, 5, 5, 3, 2}, {5, 4, 5, 3, 3, 4, 2, 2, 3, 4},
                  {"adapter", "adapter", "adapter", "adapter", "baseline", "tie", "baseline", "baseline", "tie", "adapter"}};

class ConsoleReviewCoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = qlorad::testing::MakeTempDir("console_review");
    ASSERT_OK_AND_ASSIGN(db_, store::SharedStore::Open(dir_ + "/qlorad.db", store::DaemonDatabaseMigrations()));
    ASSERT_OK(db_->With([](store::Store& s) {
      return store::EvaluationRepository(&s).Put(
          {kEval, "key-1", "sentiment@1", "2026-12-05T07:00:00.000Z", R"({"dataset_id":"uci"})"});
    }));
    std::vector<eval::ReviewItem> holdout;
    for (int i = 0; i < kItems; ++i) {
      const std::string n = std::to_string(i);
      holdout.push_back({"item-" + n, "input " + n, "reference " + n, "baseline says " + n, "adapter says " + n});
    }
    eval::ReviewExportOptions options;
    options.blind = true;
    options.seed = 7;
    ASSERT_OK_AND_ASSIGN(sample_, eval::SelectReviewSample(holdout, options));
    ExportSample();
    review_ = NewReview();
  }
  void ExportSample() {
    ASSERT_OK(store::ReviewRepository(db_.get()).PutSample(kEval, eval::ReviewSampleToJson(sample_), "2026-12-05T07:01:00Z"));
  }
  std::unique_ptr<InteractiveReview> NewReview() {
    return std::make_unique<InteractiveReview>(db_.get(), [this] { return "2026-12-05T08:00:" + std::to_string(10 + tick_++) + "Z"; });
  }
  // Item i judged with `who`'s de-blinded intent, expressed in A/B per the blind key.
  ItemJudgement Judge(const Intent& who, int i) {
    const std::string& id = sample_.items[i].id;
    const bool swap = sample_.a_is_adapter.at(id);
    ItemJudgement j;
    j.item_id = id;
    j.rating_a = swap ? who.adapter[i] : who.baseline[i];
    j.rating_b = swap ? who.baseline[i] : who.adapter[i];
    j.preference = who.pref[i] == "tie" ? "tie" : ((who.pref[i] == "adapter") == swap ? "A" : "B");
    j.comment = "note " + std::to_string(i);
    return j;
  }
  void RateAll(const std::string& reviewer, const Intent& who) {
    for (int i = 0; i < kItems; ++i) ASSERT_OK(review_->Save(kEval, reviewer, Judge(who, i)));
  }

  std::string dir_;
  std::unique_ptr<store::SharedStore> db_;
  eval::ReviewSample sample_;
  std::unique_ptr<InteractiveReview> review_;
  int tick_ = 0;
};

TEST_F(ConsoleReviewCoreTest, SaveReplaceAndResumeWithBlindLabelsHidden) {
  ASSERT_OK_AND_ASSIGN(auto queue, review_->Queue("alice"));
  ASSERT_EQ(queue.size(), 1u);
  EXPECT_EQ(queue[0].evaluation_id, kEval);
  EXPECT_EQ(queue[0].adapter_id, "sentiment@1");
  EXPECT_EQ(queue[0].dataset_id, "uci");
  EXPECT_EQ(queue[0].items, kItems);
  EXPECT_TRUE(queue[0].blind);
  EXPECT_EQ(queue[0].rated_by_reviewer, 0);

  for (int i = 0; i < 3; ++i) ASSERT_OK(review_->Save(kEval, "alice", Judge(kAlice, i)));
  ItemJudgement changed = Judge(kAlice, 1);
  changed.rating_a = 1;
  changed.preference = "tie";
  changed.comment = "second thoughts";
  ASSERT_OK(review_->Save(kEval, "alice", changed));  // replaces, does not add

  review_ = NewReview();  // a reload: everything comes back from the store
  ASSERT_OK_AND_ASSIGN(queue, review_->Queue("alice"));
  EXPECT_EQ(queue[0].rated_by_reviewer, 3);
  EXPECT_FALSE(queue[0].submitted_by_reviewer);
  ASSERT_OK_AND_ASSIGN(queue, review_->Queue("bob"));
  EXPECT_EQ(queue[0].rated_by_reviewer, 0);

  ASSERT_OK_AND_ASSIGN(ReviewSessionInfo session, review_->Session(kEval, "alice"));
  EXPECT_TRUE(session.blind);
  EXPECT_FALSE(session.submitted);
  EXPECT_EQ(session.adapter_id, "sentiment@1");
  EXPECT_EQ(session.scale_min, 1);
  EXPECT_EQ(session.scale_max, 5);
  ASSERT_EQ(session.items.size(), static_cast<size_t>(kItems));
  int swapped = 0;
  for (int i = 0; i < kItems; ++i) {
    const ReviewItemView& v = session.items[i];
    const bool swap = sample_.a_is_adapter.at(v.item_id);
    swapped += swap;
    EXPECT_EQ(v.output_a, swap ? sample_.items[i].adapter_output : sample_.items[i].baseline_output) << v.item_id;
    EXPECT_EQ(v.label_a, "") << "blind: hidden until alice submits";
    EXPECT_EQ(v.label_b, "");
  }
  EXPECT_GT(swapped, 0);
  EXPECT_LT(swapped, kItems);
  const ItemJudgement first = Judge(kAlice, 0);
  EXPECT_EQ(session.items[0].rating_a, first.rating_a);
  EXPECT_EQ(session.items[0].rating_b, first.rating_b);
  EXPECT_EQ(session.items[0].preference, first.preference);
  EXPECT_EQ(session.items[1].rating_a, 1);
  EXPECT_EQ(session.items[1].preference, "tie");
  EXPECT_EQ(session.items[1].comment, "second thoughts");
  EXPECT_EQ(session.items[5].rating_a, 0) << "not rated yet";
  EXPECT_EQ(session.items[5].preference, "");
}

TEST_F(ConsoleReviewCoreTest, FieldErrorsNameTheField) {
  ItemJudgement j = Judge(kAlice, 0);
  j.rating_a = 0;
  EXPECT_THAT(review_->Save(kEval, "alice", j), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("rating_a")));
  j = Judge(kAlice, 0);
  j.rating_b = 6;
  EXPECT_THAT(review_->Save(kEval, "alice", j), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("rating_b")));
  j = Judge(kAlice, 0);
  j.preference = "baseline";
  EXPECT_THAT(review_->Save(kEval, "alice", j), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("preference")));
  j = Judge(kAlice, 0);
  j.item_id = "item-99";
  EXPECT_THAT(review_->Save(kEval, "alice", j), StatusIs(absl::StatusCode::kNotFound, HasSubstr("item-99")));
  EXPECT_THAT(review_->Save(kEval, "", Judge(kAlice, 0)), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("reviewer")));
  EXPECT_THAT(review_->Save("eval-none", "alice", Judge(kAlice, 0)), StatusIs(absl::StatusCode::kNotFound, HasSubstr("eval-none")));
  EXPECT_THAT(review_->Session("eval-none", "alice"), StatusIs(absl::StatusCode::kNotFound, HasSubstr("eval-none")));
  ASSERT_OK_AND_ASSIGN(auto queue, review_->Queue("alice"));
  EXPECT_EQ(queue[0].rated_by_reviewer, 0) << "nothing refused was stored";
}

TEST_F(ConsoleReviewCoreTest, SubmitNeedsEveryItemThenFreezesAndShowsLabels) {
  for (int i = 0; i < 3; ++i) ASSERT_OK(review_->Save(kEval, "alice", Judge(kAlice, i)));
  EXPECT_THAT(review_->Submit(kEval, "alice"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("7 of 10 items are unrated")));
  RateAll("alice", kAlice);
  ASSERT_OK_AND_ASSIGN(nlohmann::json summary, review_->Submit(kEval, "alice"));
  EXPECT_EQ(summary["reviewers"], nlohmann::json({"alice"}));
  EXPECT_EQ(summary["ratings"], kItems);
  EXPECT_TRUE(summary["rating_agreement"].is_null()) << "one reviewer: no agreement yet";
  EXPECT_EQ(summary["win_rate"]["wins"], 6);
  EXPECT_EQ(summary["win_rate"]["losses"], 2);
  EXPECT_EQ(summary["win_rate"]["ties"], 2);

  EXPECT_THAT(review_->Save(kEval, "alice", Judge(kAlice, 0)), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("submitted")));
  EXPECT_THAT(review_->Submit(kEval, "alice"), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("already submitted")));

  ASSERT_OK_AND_ASSIGN(ReviewSessionInfo alice, review_->Session(kEval, "alice"));
  EXPECT_TRUE(alice.submitted);
  ASSERT_OK_AND_ASSIGN(ReviewSessionInfo bob, review_->Session(kEval, "bob"));
  EXPECT_FALSE(bob.submitted);
  for (int i = 0; i < kItems; ++i) {
    const bool swap = sample_.a_is_adapter.at(alice.items[i].item_id);
    EXPECT_EQ(alice.items[i].label_a, swap ? "adapter" : "baseline");
    EXPECT_EQ(alice.items[i].label_b, swap ? "baseline" : "adapter");
    EXPECT_EQ(bob.items[i].label_a, "") << "bob has not submitted";
  }
  ASSERT_OK_AND_ASSIGN(auto queue, review_->Queue("bob"));
  EXPECT_EQ(queue[0].submitted_reviewers, std::vector<std::string>({"alice"}));
  EXPECT_FALSE(queue[0].submitted_by_reviewer);
}

TEST_F(ConsoleReviewCoreTest, SummaryOverSubmittedReviewersMatchesReferences) {
  RateAll("alice", kAlice);
  RateAll("bob", kBob);
  ASSERT_OK(review_->Submit(kEval, "alice").status());
  ASSERT_OK_AND_ASSIGN(nlohmann::json summary, review_->Submit(kEval, "bob"));
  EXPECT_EQ(summary["reviewers"], nlohmann::json({"alice", "bob"}));
  // scikit-learn's cohen_kappa_score (tests/reference/console_review_reference.py).
  EXPECT_NEAR(summary["rating_agreement"]["cohen_kappa"].get<double>(), 0.5317725752508361, 1e-12);
  EXPECT_NEAR(summary["preference_agreement"]["cohen_kappa"].get<double>(), 0.5, 1e-12);
  // Win rate: 11 adapter wins, 5 losses, 4 ties (left out of the rate).
  const nlohmann::json& w = summary["win_rate"];
  EXPECT_EQ(w["wins"], 11);
  EXPECT_EQ(w["losses"], 5);
  EXPECT_EQ(w["ties"], 4);
  EXPECT_DOUBLE_EQ(w["rate"].get<double>(), 11.0 / 16);
  EXPECT_NEAR(w["lower"].get<double>(), 0.44404355834740666, 1e-9);
  EXPECT_NEAR(w["upper"].get<double>(), 0.8583535614521796, 1e-9);
  EXPECT_EQ(w["method"], "wilson");
  // De-blinded means over both reviewers.
  EXPECT_DOUBLE_EQ(summary["mean_baseline_rating"].get<double>(), (30 + 31) / 20.0);
  EXPECT_DOUBLE_EQ(summary["mean_adapter_rating"].get<double>(), (35 + 35) / 20.0);
  // Stored as the evaluation's newest review (GetEvaluation shows it under "review").
  ASSERT_OK_AND_ASSIGN(std::optional<nlohmann::json> stored, store::ReviewRepository(db_.get()).LatestReview(kEval));
  ASSERT_TRUE(stored.has_value());
  EXPECT_EQ((*stored)["summary"]["win_rate"], w);
}

TEST(WilsonIntervalTest, HandComputed) {
  // 8 of 10: p = 0.8, z = 1.96: center (0.8 + 0.19207) / 1.38415 = 0.716740,
  // half 1.96 / 1.38415 * sqrt(0.016 + 0.0096040) = 0.226578 -> [0.490162, 0.943318]
  auto w = eval::WilsonInterval(8, 10);
  ASSERT_TRUE(w.has_value());
  EXPECT_NEAR(w->lower, 0.490162, 1e-5);
  EXPECT_NEAR(w->upper, 0.943318, 1e-5);
  EXPECT_FALSE(eval::WilsonInterval(0, 0).has_value());
  EXPECT_NEAR(eval::WilsonInterval(0, 5)->lower, 0.0, 1e-12);
}

TEST_F(ConsoleReviewCoreTest, AuditTrailAndReExportReset) {
  RateAll("alice", kAlice);
  ASSERT_OK(review_->Submit(kEval, "alice").status());
  RateAll("bob", kBob);
  ASSERT_OK(review_->Submit(kEval, "bob").status());
  ASSERT_OK_AND_ASSIGN(std::vector<nlohmann::json> trail, review_->AuditTrail(std::string("evaluation:") + kEval));
  ASSERT_EQ(trail.size(), 2u) << "saves are not audited; each submission is";
  EXPECT_EQ(trail[0]["action"], "review.submit");
  EXPECT_EQ(trail[0]["actor"], "alice");
  EXPECT_EQ(trail[1]["actor"], "bob");
  EXPECT_LT(trail[0]["seq"].get<int64_t>(), trail[1]["seq"].get<int64_t>());
  EXPECT_EQ(trail[1]["details"]["win_rate"]["wins"], 11);
  EXPECT_EQ(trail[1]["details"]["reviewers"], nlohmann::json({"alice", "bob"}));
  EXPECT_THAT(review_->AuditTrail("nonsense"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("subject")));

  ExportSample();  // a re-export starts a new review
  ASSERT_OK_AND_ASSIGN(auto queue, review_->Queue("alice"));
  EXPECT_EQ(queue[0].rated_by_reviewer, 0);
  EXPECT_TRUE(queue[0].submitted_reviewers.empty());
}

TEST_F(ConsoleReviewCoreTest, DecisionEvidenceIsInTheAuditEntry) {
  store::AdapterStore adapters(db_.get());
  ASSERT_OK(adapters.Register({"sentiment@1", "sentiment", 1, "job-1", "/tmp/a", "fp", "uci", "2026-12-05T07:00:00Z", false},
                              "trainer", nlohmann::json::object()));
  ASSERT_OK(db_->With([](store::Store& s) {
    return store::AdapterLifecycle(&s).MarkEvaluated("sentiment@1", "evaluator", kEval);
  }));
  store::Decision d;
  d.actor = "dora";
  d.note = "read the review";
  d.risk_class = store::RiskClass::kLimited;
  d.evidence_evaluation_ids = {kEval};
  d.evidence_review_summary = {{"win_rate", {{"rate", 0.6875}}}};
  ASSERT_OK(adapters.Approve("sentiment@1", d));
  ASSERT_OK_AND_ASSIGN(std::vector<nlohmann::json> trail, review_->AuditTrail("adapter:sentiment@1"));
  ASSERT_FALSE(trail.empty());
  EXPECT_EQ(trail.back()["action"], "approve");
  EXPECT_EQ(trail.back()["actor"], "dora");
  EXPECT_EQ(trail.back()["details"]["evidence"]["evaluation_ids"], nlohmann::json({kEval}));
  EXPECT_EQ(trail.back()["details"]["evidence"]["review_summary"]["win_rate"]["rate"], 0.6875);
  EXPECT_EQ(trail.front()["action"], "register") << "oldest first";
}

}  // namespace
}  // namespace qlorad::service

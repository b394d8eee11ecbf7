// EvaluationRunner over a fake Scorer: real hold-out (UCI sentences through core/data),
// real SQLite store. Checks the baseline is computed once and reused, the adapter's
// record is stored with the lifecycle move to 'evaluated' (one audit entry), artifacts
// are written, and a deployed adapter keeps its state.
#include "core/eval/evaluation_runner.h"

#include <filesystem>
#include <map>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/store/adapter_store.h"
#include "core/store/audit_log.h"
#include "core/store/daemon_migrations.h"
#include "tests/core/data/data_test_util.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

namespace qlorad::eval {
namespace {

// The base answers the first label every time; the adapter answers the true label.
class FakeScorer : public Scorer {
 public:
  explicit FakeScorer(std::map<std::string, std::string> truth) : truth_(std::move(truth)) {}
  std::string base_fingerprint() const override { return "fp-test"; }
  std::string prompt_format() const override { return "plain"; }
  absl::StatusOr<std::string> Classify(const std::string& adapter_id, const std::string& text,
                                       const std::vector<std::string>& labels, const std::string&) override {
    ++calls[adapter_id];
    if (labels.empty()) return absl::InternalError("no labels");
    auto it = truth_.find(text);
    return adapter_id.empty() || it == truth_.end() ? labels[0] : it->second;
  }
  absl::StatusOr<std::string> Generate(const std::string&, const std::string&, const std::string&, int64_t) override {
    return absl::UnimplementedError("classification only");
  }
  // The base scores every completion alike (a tie counts as not preferring chosen); the
  // adapter scores the completion naming the true label higher.
  absl::StatusOr<std::vector<double>> CompletionLogLikelihoods(const std::string& adapter_id, const std::string& prompt,
                                                               const std::vector<std::string>& completions) override {
    ++calls[adapter_id];
    std::vector<double> out;
    auto it = truth_.find(prompt);
    for (const std::string& c : completions)
      out.push_back(!adapter_id.empty() && it != truth_.end() && c == "label " + it->second ? -1.0 : -2.0);
    return out;
  }
  std::map<std::string, int> calls;

 private:
  std::map<std::string, std::string> truth_;
};

class EvaluationRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    work_ = testing::MakeTempDir("eval_runner");
    ASSERT_OK_AND_ASSIGN(datasets_, data::DatasetStore::Open(work_ + "/datasets"));
    std::string source;
    std::map<std::string, std::string> truth;
    for (const auto& [text, cls] : data::testing::LoadUciSentences(testing::NpmDir())) {
      source += nlohmann::json({{"text", text}, {"label", cls}}).dump() + "\n";
      truth[text] = std::to_string(cls);
    }
    data::testing::WriteFile(work_ + "/uci.jsonl", source);
    data::IngestOptions o;
    o.source_path = work_ + "/uci.jsonl";
    o.dataset_id = "uci";
    ASSERT_OK_AND_ASSIGN(data::IngestResult ingested, datasets_->Ingest(o));
    manifest_ = ingested.manifest;
    ASSERT_OK_AND_ASSIGN(db_, store::SharedStore::Open(work_ + "/qlorad.db", store::DaemonDatabaseMigrations()));
    adapters_ = std::make_unique<store::AdapterStore>(db_.get());
    ASSERT_OK(adapters_->Register({"s@1", "s", 1, "job-1", work_ + "/s", "fp-test", "uci", "t0", false}, "trainer", {}));
    scorer_ = std::make_unique<FakeScorer>(truth);
    runner_ = std::make_unique<EvaluationRunner>(datasets_.get(), db_.get(), scorer_.get(), work_ + "/evaluations");
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(work_, ec);
  }
  EvaluationRequest Request(const std::string& id, const std::string& adapter) {
    return {id, "uci", manifest_["files"]["holdout"].value("sha256", ""), manifest_, adapter, "log_likelihood", 60,
            "evaluator"};
  }

  std::string work_;
  nlohmann::json manifest_;
  std::unique_ptr<data::DatasetStore> datasets_;
  std::unique_ptr<store::SharedStore> db_;
  std::unique_ptr<store::AdapterStore> adapters_;
  std::unique_ptr<FakeScorer> scorer_;
  std::unique_ptr<EvaluationRunner> runner_;
};

TEST_F(EvaluationRunnerTest, BaselineOnceThenAdapterRecordAndLifecycleTogether) {
  ASSERT_OK_AND_ASSIGN(EvaluationRecord baseline, runner_->Evaluate(Request("eval-1", "")));
  EXPECT_FALSE(baseline.adapter.has_value());
  EXPECT_EQ(scorer_->calls[""], 60);
  ASSERT_OK_AND_ASSIGN(EvaluationRecord record, runner_->Evaluate(Request("eval-2", "s@1")));
  EXPECT_EQ(scorer_->calls[""], 60) << "the baseline of the same (base, hold-out, settings) is reused";
  EXPECT_EQ(scorer_->calls["s@1"], 60);
  EXPECT_EQ(record.baseline.outputs, baseline.baseline.outputs);
  ASSERT_TRUE(record.adapter.has_value());
  ASSERT_TRUE(record.delta.has_value());
  EXPECT_GT(record.delta->lower, 0) << "the always-right adapter beats the constant baseline";
  EXPECT_TRUE(std::filesystem::exists(runner_->ReportPath("eval-2").value()));

  ASSERT_OK_AND_ASSIGN(store::AdapterVersion version, adapters_->Version("s@1"));
  EXPECT_EQ(version.state, store::AdapterState::kEvaluated);
  EXPECT_EQ(version.evaluation_id, "eval-2");
  ASSERT_OK_AND_ASSIGN(auto log, db_->Read<std::vector<store::AuditEntry>>([](store::Store& s) {
    return store::AuditLog(&s).List("adapter", "s@1");
  }));
  ASSERT_EQ(log.size(), 2u);  // register, evaluate
  EXPECT_EQ(log.back().action, "evaluate");
  ASSERT_OK_AND_ASSIGN(EvaluationRecord stored, runner_->Get("eval-2"));
  EXPECT_EQ(stored.id, "eval-2");
  EXPECT_EQ(stored.adapter_id, "s@1");
}

TEST_F(EvaluationRunnerTest, PreferenceHoldoutScoresWhichCompletionIsMoreLikely) {
  std::string source;
  for (const auto& [text, cls] : data::testing::LoadUciSentences(testing::NpmDir()))
    source += nlohmann::json({{"prompt", text}, {"chosen", "label " + std::to_string(cls)},
                              {"rejected", "label " + std::to_string(1 - cls)}}).dump() + "\n";
  data::testing::WriteFile(work_ + "/prefs.jsonl", source);
  data::IngestOptions o;
  o.source_path = work_ + "/prefs.jsonl";
  o.dataset_id = "prefs";
  ASSERT_OK_AND_ASSIGN(data::IngestResult ingested, datasets_->Ingest(o));
  EXPECT_EQ(ingested.manifest.value("format", ""), "preference");
  EvaluationRequest request{"eval-p", "prefs", ingested.manifest["files"]["holdout"].value("sha256", ""),
                            ingested.manifest, "s@1", "generation", 40, "evaluator"};
  ASSERT_OK_AND_ASSIGN(EvaluationRecord record, runner_->Evaluate(request));
  EXPECT_EQ(record.headline_metric, "accuracy");
  EXPECT_EQ(record.settings.value("task", ""), "preference");
  EXPECT_EQ(record.settings.value("scoring", ""), "log_likelihood") << "pairs are scored by likelihood whatever was asked";
  EXPECT_THAT(record.references, ::testing::Each(::testing::Eq("chosen")));
  EXPECT_THAT(record.baseline.outputs, ::testing::Each(::testing::Eq("rejected"))) << "a tie is not a preference";
  ASSERT_TRUE(record.adapter.has_value() && record.delta.has_value());
  EXPECT_THAT(record.adapter->outputs, ::testing::Each(::testing::Eq("chosen")));
  EXPECT_DOUBLE_EQ(record.delta->point, 1.0);
  EXPECT_EQ(scorer_->calls["s@1"], 40);
}

TEST_F(EvaluationRunnerTest, RefusalsAndADeployedAdapterKeepsItsState) {
  EXPECT_THAT(runner_->Evaluate([&] { auto r = Request("eval-x", ""); r.scoring = "vibes"; return r; }()),
              testing::StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("scoring")));
  EXPECT_THAT(runner_->Get("missing"), testing::StatusIs(absl::StatusCode::kNotFound, ::testing::_));
  ASSERT_OK(runner_->Evaluate(Request("eval-1", "s@1")).status());
  store::Decision approve;
  approve.actor = "owner";
  ASSERT_OK(adapters_->Approve("s@1", approve));
  ASSERT_OK(adapters_->Promote("s@1", "prod", "ops", {}));
  ASSERT_OK(runner_->Evaluate(Request("eval-2", "s@1")).status());
  ASSERT_OK_AND_ASSIGN(store::AdapterVersion version, adapters_->Version("s@1"));
  EXPECT_EQ(version.state, store::AdapterState::kDeployed);
  EXPECT_EQ(version.evaluation_id, "eval-1");
}

}  // namespace
}  // namespace qlorad::eval

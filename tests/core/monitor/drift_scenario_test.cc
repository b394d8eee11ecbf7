// Drift scenario on real text (issue 10 "Must show"): a reference profile from
// the UCI sentiment sentences (80 %, every 5th sentence held out); held-out
// sentiment traffic stays under the moderate band; SpamAssassin emails and
// State of the Union sentences push PSI and JS over the significant band
// within one window.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <random>
#include <unistd.h>
#include <utility>

#include "core/monitor/drift_window.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/core/monitor/text_corpora.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/util/file_util.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

namespace qlorad::monitor {
namespace {

using ::qlorad::monitor::testing::LoadSentimentSentences;
using ::qlorad::monitor::testing::LoadSotuSentences;
using ::qlorad::monitor::testing::LoadSpamAssassinEmails;
using ::qlorad::monitor::testing::ToPrompts;

constexpr size_t kWindow = 500;

// Every `n/k`-th element, k of them (deterministic, spread over the corpus).
std::vector<std::string> EvenSample(const std::vector<std::string>& v, size_t k) {
  std::vector<std::string> out;
  for (size_t i = 0; i < k && i < v.size(); ++i) out.push_back(v[i * v.size() / k]);
  return out;
}

// Feeds the gauges the daemon will export from these reports
// (qlorad_drift_psi / qlorad_drift_js_distance / qlorad_drift_window_prompts,
// deploy/METRICS.md) into `promtool test rules` with deploy/prometheus/alerts.yml:
// 30 min at the in-distribution values, then 30 min at the shifted ones. The
// significant-band alerts must stay silent on the first half and fire on the
// second (for: 15m). Returns promtool's exit status and output.
std::pair<int, std::string> PromtoolDriftCheck(const DriftReport& stable, const DriftReport& shifted,
                                               const std::string& adapter) {
  const std::string dir = qlorad::testing::MakeTempDir("drift_promtool");
  const std::string labels =
      absl::StrCat("job=\"qlorad\",instance=\"q:9464\",adapter=\"", adapter, "\"");
  auto series = [](double a, double b) {
    return absl::StrFormat("%.17gx29 %.17gx29", a, b);
  };
  std::string y = absl::StrCat(
      "rule_files:\n  - ", qlorad::testing::SourceDir(), "/deploy/prometheus/alerts.yml\n",
      "evaluation_interval: 1m\n"
      "tests:\n"
      "  - interval: 1m\n"
      "    external_labels: {qlorad_console_url: 'http://console:8090'}\n"
      "    input_series:\n"
      "      - series: 'qlorad_drift_psi{", labels, ",feature=\"prompt_length\"}'\n",
      "        values: '", series(stable.psi_length, shifted.psi_length), "'\n",
      "      - series: 'qlorad_drift_js_distance{", labels, "}'\n",
      "        values: '", series(stable.js_tokens, shifted.js_tokens), "'\n",
      "      - series: 'qlorad_drift_window_prompts{", labels, "}'\n",
      "        values: '", series(static_cast<double>(stable.window_size), static_cast<double>(shifted.window_size)), "'\n",
      "    alert_rule_test:\n");
  for (const char* alert : {"QloradPromptDriftSignificant", "QloradTokenDriftSignificant",
                            "QloradPromptDriftModerate", "QloradTokenDriftModerate"}) {
    absl::StrAppend(&y, "      - {eval_time: 25m, alertname: ", alert, ", exp_alerts: []}\n");
  }
  absl::StrAppend(
      &y, "      - eval_time: 50m\n        alertname: QloradPromptDriftSignificant\n",
      "        exp_alerts:\n          - exp_labels: {severity: critical, job: qlorad, instance: \"q:9464\", adapter: ",
      adapter, ", feature: prompt_length}\n",
      "            exp_annotations:\n",
      "              summary: 'Significant prompt drift for adapter ", adapter, " (prompt_length)'\n",
      "              description: 'PSI ", absl::StrFormat("%.3f", shifted.psi_length),
      " > 0.25 against the training profile for 15 minutes; re-evaluate or retrain the adapter.'\n",
      "              adapter_page: 'http://console:8090/#/adapters/", adapter, "'\n",
      "      - eval_time: 50m\n        alertname: QloradTokenDriftSignificant\n",
      "        exp_alerts:\n          - exp_labels: {severity: critical, job: qlorad, instance: \"q:9464\", adapter: ",
      adapter, "}\n",
      "            exp_annotations:\n",
      "              summary: 'Significant token-distribution drift for adapter ", adapter, "'\n",
      "              description: 'Jensen-Shannon distance ", absl::StrFormat("%.3f", shifted.js_tokens),
      " > 0.25 for 15 minutes; re-evaluate or retrain the adapter.'\n",
      "              adapter_page: 'http://console:8090/#/adapters/", adapter, "'\n");
  const std::string test_file = dir + "/drift_alerts_test.yml";
  EXPECT_OK(WriteFileAtomically(test_file, y));
  const std::string out_file = dir + "/promtool.out";
  const int rc = std::system(
      absl::StrCat("/usr/bin/promtool test rules ", test_file, " > ", out_file, " 2>&1").c_str());
  auto out = ReadFileToString(out_file);
  return {rc, absl::StrCat(out.ok() ? *out : "(no output)", "\n--- test file ---\n", y)};
}

class DriftScenarioTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto sentences = LoadSentimentSentences();
    ASSERT_TRUE(sentences.ok()) << sentences.status();
    ASSERT_EQ(sentences->size(), 3000u);
    std::vector<std::string> train;
    for (size_t i = 0; i < sentences->size(); ++i) {
      (i % 5 == 4 ? held_out_ : train).push_back((*sentences)[i]);
    }
    // Traffic arrives in no particular order: a fixed-seed shuffle.
    std::mt19937 rng(1234);
    std::shuffle(held_out_.begin(), held_out_.end(), rng);
    auto profile = DriftProfile::Build(ToPrompts(train));
    ASSERT_TRUE(profile.ok()) << profile.status();
    profile_ = std::make_shared<const DriftProfile>(*std::move(profile));
  }

  static std::unique_ptr<DriftWindow> NewWindow() {
    DriftWindowOptions options;
    options.max_prompts = kWindow;
    auto w = DriftWindow::Create(profile_, options);
    EXPECT_TRUE(w.ok()) << w.status();
    return *std::move(w);
  }

  static void Feed(DriftWindow& w, const std::vector<std::string>& texts) {
    for (PromptSample& p : ToPrompts(texts)) ASSERT_OK(w.Add(std::move(p)));
  }

  // Feeds a full window of held-out traffic, then `shifted` one prompt at a
  // time; returns the report when the window is entirely shifted and the
  // number of shifted prompts after which the band first became significant.
  static DriftReport ShiftWithinOneWindow(const std::vector<std::string>& shifted,
                                          size_t* prompts_to_significant,
                                          DriftReport* before_shift) {
    auto w = NewWindow();
    Feed(*w, EvenSample(held_out_, kWindow));
    auto before = w->ComputeReport();
    EXPECT_TRUE(before.ok()) << before.status();
    if (before.ok()) *before_shift = *before;
    EXPECT_EQ(before_shift->band, DriftBand::kStable);
    *prompts_to_significant = 0;
    std::vector<PromptSample> prompts = ToPrompts(shifted);
    for (size_t i = 0; i < prompts.size(); ++i) {
      EXPECT_OK(w->Add(std::move(prompts[i])));
      if (*prompts_to_significant == 0 && i % 10 == 9) {
        auto r = w->ComputeReport();
        if (r.ok() && r->band == DriftBand::kSignificant) *prompts_to_significant = i + 1;
      }
    }
    auto report = w->ComputeReport();
    EXPECT_TRUE(report.ok()) << report.status();
    return report.ok() ? *report : DriftReport{};
  }

  static void ExpectAlertsFire(const DriftReport& before, const DriftReport& after,
                               const std::string& adapter) {
    if (access("/usr/bin/promtool", X_OK) != 0) {
      GTEST_FAIL() << "/usr/bin/promtool missing (Debian 'prometheus', deploy/setup.sh): "
                      "alert rules not checked against the scenario";
    }
    auto [rc, output] = PromtoolDriftCheck(before, after, adapter);
    EXPECT_EQ(rc, 0) << output;
  }

  static std::vector<std::string> held_out_;
  static std::shared_ptr<const DriftProfile> profile_;
};

std::vector<std::string> DriftScenarioTest::held_out_;
std::shared_ptr<const DriftProfile> DriftScenarioTest::profile_;

TEST_F(DriftScenarioTest, HeldOutSentimentStaysStable) {
  ASSERT_GE(held_out_.size(), kWindow);
  auto w = NewWindow();
  // Every full window position while the held-out traffic streams through.
  std::vector<PromptSample> prompts = ToPrompts(held_out_);
  for (size_t i = 0; i < prompts.size(); ++i) {
    ASSERT_OK(w->Add(std::move(prompts[i])));
    if (i + 1 < kWindow || (i + 1) % 25 != 0) continue;
    ASSERT_OK_AND_ASSIGN(DriftReport r, w->ComputeReport());
    if ((i + 1) % 100 == 0) std::cout << "held-out @" << i + 1 << ": " << r.ToJson() << "\n";
    EXPECT_EQ(r.window_size, static_cast<int64_t>(kWindow));
    EXPECT_LT(r.psi_length, kModerateThreshold);
    EXPECT_LT(r.js_tokens, kModerateThreshold);
    EXPECT_EQ(r.band, DriftBand::kStable);
    EXPECT_LT(std::abs(r.rare_token_rate_delta), 0.05);
    ASSERT_TRUE(r.has_embedding_distance);
  }
}

TEST_F(DriftScenarioTest, SpamAssassinEmailsAreSignificantWithinOneWindow) {
  auto emails = LoadSpamAssassinEmails();
  ASSERT_TRUE(emails.ok()) << emails.status();
  ASSERT_EQ(emails->size(), 6046u);
  size_t to_significant = 0;
  DriftReport before;
  DriftReport r = ShiftWithinOneWindow(EvenSample(*emails, kWindow), &to_significant, &before);
  std::cout << "spam-assassin: " << r.ToJson() << " significant after " << to_significant
            << " prompts\n";
  EXPECT_GT(r.psi_length, kSignificantThreshold);
  EXPECT_GT(r.js_tokens, kSignificantThreshold);
  EXPECT_EQ(r.band, DriftBand::kSignificant);
  EXPECT_GT(r.rare_token_rate_delta, 0.1);
  EXPECT_GT(to_significant, 0u);
  EXPECT_LE(to_significant, kWindow);
  ExpectAlertsFire(before, r, "mail-bot");
}

TEST_F(DriftScenarioTest, StateOfTheUnionIsSignificantWithinOneWindow) {
  auto sotu = LoadSotuSentences();
  ASSERT_TRUE(sotu.ok()) << sotu.status();
  ASSERT_GT(sotu->size(), 10000u);
  size_t to_significant = 0;
  DriftReport before;
  DriftReport r = ShiftWithinOneWindow(EvenSample(*sotu, kWindow), &to_significant, &before);
  std::cout << "sotu: " << r.ToJson() << " significant after " << to_significant << " prompts\n";
  EXPECT_GT(r.psi_length, kSignificantThreshold);
  EXPECT_GT(r.js_tokens, kSignificantThreshold);
  EXPECT_EQ(r.band, DriftBand::kSignificant);
  EXPECT_GT(to_significant, 0u);
  EXPECT_LE(to_significant, kWindow);
  ExpectAlertsFire(before, r, "sotu-bot");
}

TEST_F(DriftScenarioTest, EmbeddingStandInSeparatesShiftedTraffic) {
  // The hashed stand-in embedding is not a model embedding; this only shows
  // the centroid statistic orders in-distribution below shifted traffic.
  auto emails = LoadSpamAssassinEmails();
  ASSERT_TRUE(emails.ok());
  auto in = NewWindow();
  Feed(*in, EvenSample(held_out_, kWindow));
  auto out = NewWindow();
  Feed(*out, EvenSample(*emails, kWindow));
  ASSERT_OK_AND_ASSIGN(DriftReport r_in, in->ComputeReport());
  ASSERT_OK_AND_ASSIGN(DriftReport r_out, out->ComputeReport());
  ASSERT_TRUE(r_in.has_embedding_distance && r_out.has_embedding_distance);
  std::cout << "embedding distance: held-out " << r_in.embedding_distance << ", spam "
            << r_out.embedding_distance << "\n";
  EXPECT_GT(r_out.embedding_distance, 5 * r_in.embedding_distance);
}

}  // namespace
}  // namespace qlorad::monitor

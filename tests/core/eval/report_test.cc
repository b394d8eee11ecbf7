// Evaluation record + HTML report: building from per-example outputs, JSON round trip,
// escaping, and rendering in headless Chromium (Debian's `chromium`): a screenshot PNG
// and the rendered DOM must contain the report's table rows.
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "core/eval/artifacts.h"
#include "core/eval/evaluation_record.h"
#include "core/eval/html_report.h"
#include "core/eval/review.h"
#include "core/util/file_util.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

namespace qlorad::eval {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// A 3-class hold-out of 240 examples; the baseline is right ~50 %, the adapter ~80 %,
// and one label contains markup that must be escaped.
EvaluationInputs ClassificationInputs() {
  EvaluationInputs in;
  const std::vector<std::string> labels = {"negative", "neutral", "<b>positive</b>"};
  std::vector<std::string> base_out, adapter_out;
  for (int i = 0; i < 240; ++i) {
    const std::string truth = labels[i % 3];
    in.ids.push_back(absl::StrCat("ex", i));
    in.inputs.push_back(absl::StrCat("review #", i, " <script>alert('x')</script> & more"));
    in.references.push_back(truth);
    base_out.push_back(i % 2 == 0 ? truth : labels[(i + 1) % 3]);
    adapter_out.push_back(i % 5 != 0 ? truth : labels[(i + 2) % 3]);
  }
  in.baseline_outputs = base_out;
  in.adapter_outputs = adapter_out;
  return in;
}

RecordOptions Options() {
  RecordOptions o;
  o.task = TaskKind::kClassification;
  o.record_id = "eval-1";
  o.created_at = "2026-11-29T05:00:00.000Z";
  o.dataset_id = "uci-sentiment";
  o.base_fingerprint = "sha256:base";
  o.holdout_checksum = "sha256:holdout";
  o.settings = {{"prompt_format", "plain"}, {"scoring", "log-likelihood"}};
  o.adapter_id = "sentiment-v1";
  o.bootstrap.resamples = 500;
  return o;
}

TEST(EvaluationRecordTest, ClassificationBaselineVsAdapter) {
  ASSERT_OK_AND_ASSIGN(EvaluationRecord r, BuildEvaluationRecord(ClassificationInputs(), Options()));
  EXPECT_EQ(r.headline_metric, "macro_f1");
  ASSERT_TRUE(r.adapter.has_value());
  ASSERT_TRUE(r.delta.has_value());
  EXPECT_NEAR(r.baseline.classification->accuracy, 0.5, 1e-12);
  EXPECT_NEAR(r.adapter->classification->accuracy, 0.8, 1e-12);
  EXPECT_DOUBLE_EQ(r.baseline.headline.point, r.baseline.classification->macro_avg.f1);
  EXPECT_DOUBLE_EQ(r.adapter->headline.point, r.adapter->classification->macro_avg.f1);
  EXPECT_NEAR(r.delta->point, r.adapter->headline.point - r.baseline.headline.point, 1e-12);
  EXPECT_GT(r.delta->lower, 0.0);  // 0.5 -> 0.8 on 240 examples is a real improvement
  EXPECT_LE(r.delta->lower, r.delta->point);
  EXPECT_GE(r.delta->upper, r.delta->point);
  EXPECT_EQ(r.baseline_key, BaselineKey("sha256:base", "sha256:holdout", Options().settings));
  EXPECT_EQ(r.error_sample.size(), 20u);
  for (const auto& e : r.error_sample) EXPECT_NE(e.adapter_output, e.reference);
  // JSON round trip.
  ASSERT_OK_AND_ASSIGN(EvaluationRecord back, EvaluationRecordFromJson(EvaluationRecordToJson(r)));
  EXPECT_EQ(EvaluationRecordToJson(back), EvaluationRecordToJson(r));
}

TEST(EvaluationRecordTest, GenerationMetricsAndBertScoreUnavailable) {
  EvaluationInputs in;
  in.ids = {"a", "b", "c"};
  in.inputs = {"q1", "q2", "q3"};
  in.references = {"the cat sat", "{\"x\": 1}", "running fast"};
  in.baseline_outputs = {"a dog sat", "x is 1", "runs fast"};
  in.adapter_outputs = std::vector<std::string>{"The cat sat.", "{\"x\": 1}", "running fast"};
  auto json = FormatChecker::CreateJson(true);
  RecordOptions o = Options();
  o.task = TaskKind::kGeneration;
  o.format = json.get();
  ASSERT_OK_AND_ASSIGN(EvaluationRecord r, BuildEvaluationRecord(in, o));
  EXPECT_EQ(r.headline_metric, "rouge_l_f");
  EXPECT_NEAR(r.adapter->generation->exact_match, 1.0, 1e-12);
  EXPECT_NEAR(*r.adapter->generation->format_adherence, 1.0 / 3, 1e-12);
  // Baseline ROUGE-L with stemming: "the cat sat"/"a dog sat" -> LCS {sat}: 1/3;
  // {"x":1} vs "x is 1": LCS {x,1}: P=2/3,R=1 -> .8; "running fast"/"runs fast" -> 1.
  EXPECT_NEAR(r.baseline.generation->rouge_l_f, (1.0 / 3 + 0.8 + 1.0) / 3, 1e-12);
  EXPECT_FALSE(r.baseline.bertscore.available());
  EXPECT_EQ(EvaluationRecordToJson(r)["baseline"]["bertscore"]["status"], "unavailable");
  const std::string html = RenderHtmlReport(r);
  EXPECT_THAT(html, HasSubstr("unavailable: no encoder model directory configured"));
  EXPECT_THAT(html, HasSubstr("ROUGE-L F (Porter stemmer)"));
  EXPECT_THAT(html, HasSubstr("format adherence (JSON object)"));
  o.headline_metric = "macro_f1";
  EXPECT_THAT(BuildEvaluationRecord(in, o),
              testing::StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a generation metric")));
  in.ids.pop_back();
  o.headline_metric = "";
  EXPECT_THAT(BuildEvaluationRecord(in, o), testing::StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("ids: has 2")));
}

TEST(HtmlReportTest, SelfContainedAndEscaped) {
  ASSERT_OK_AND_ASSIGN(EvaluationRecord r, BuildEvaluationRecord(ClassificationInputs(), Options()));
  const std::string html = RenderHtmlReport(r);
  EXPECT_THAT(html, HasSubstr("&lt;b&gt;positive&lt;/b&gt;"));
  EXPECT_THAT(html, Not(HasSubstr("<script")));
  EXPECT_THAT(html, Not(HasSubstr("<b>positive")));
  EXPECT_THAT(html, Not(HasSubstr("http://example")));
  EXPECT_THAT(html, Not(HasSubstr("src=")));
  EXPECT_THAT(html, Not(HasSubstr("href=")));
  EXPECT_THAT(html, HasSubstr("<svg"));
  EXPECT_EQ(HtmlEscape("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
}

TEST(ArtifactsTest, WritesRecordReportAndSeparateBlindKey) {
  ASSERT_OK_AND_ASSIGN(EvaluationRecord r, BuildEvaluationRecord(ClassificationInputs(), Options()));
  std::vector<ReviewItem> items;
  for (size_t i = 0; i < r.references.size(); ++i) {
    items.push_back({r.example_ids[i], "input", r.references[i], r.baseline.outputs[i], r.adapter->outputs[i]});
  }
  ReviewExportOptions ro;
  ro.blind = true;
  ASSERT_OK_AND_ASSIGN(ReviewSample sample, SelectReviewSample(items, ro));
  r.review = ReviewRecordSection(sample, nullptr);
  const std::string dir = testing::MakeTempDir("artifacts");
  ASSERT_OK(WriteEvaluationArtifacts(r, dir + "/eval"));
  ASSERT_OK(WriteReviewExport(sample, dir + "/review"));
  ASSERT_OK_AND_ASSIGN(EvaluationRecord back, ReadEvaluationRecord(dir + "/eval/evaluation.json"));
  EXPECT_EQ(back.review["sample"]["key"], ReviewKeyToJson(sample));
  ASSERT_OK_AND_ASSIGN(std::string csv, ReadFileToString(dir + "/review/review.csv"));
  ASSERT_OK_AND_ASSIGN(std::string key, ReadFileToString(dir + "/review/review_key.json"));
  EXPECT_THAT(csv, HasSubstr("output_a"));
  EXPECT_THAT(csv, Not(HasSubstr("\"A\"")));  // no key material in the reviewers' file
  EXPECT_THAT(key, HasSubstr("\"A\""));
  EXPECT_TRUE(std::filesystem::exists(dir + "/eval/report.html"));
}

int RunShell(const std::string& cmd) {
  const int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

TEST(HtmlReportTest, RendersInHeadlessChromium) {
  if (RunShell("command -v chromium >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "Debian's `chromium` is not installed (deploy/setup.sh installs it); skipping the browser check";
  }
  ASSERT_OK_AND_ASSIGN(EvaluationRecord r, BuildEvaluationRecord(ClassificationInputs(), Options()));
  // Attach a review summary so that section renders too.
  ReviewSummary summary;
  summary.reviewers = {"alice", "bob"};
  r.review = {{"summary", ReviewSummaryToJson(summary)}};
  const std::string dir = testing::MakeTempDir("eval_report");
  const std::string html_path = dir + "/report.html";
  ASSERT_OK(WriteFileAtomically(html_path, RenderHtmlReport(r)));
  const std::string flags = absl::StrCat(
      "timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run "
      "--disable-background-networking --disable-component-update --disable-sync --disable-dev-shm-usage "
      "--user-data-dir=", dir, "/profile ");
  const std::string png = dir + "/report.png";
  ASSERT_EQ(RunShell(absl::StrCat(flags, "--screenshot=", png, " --window-size=1200,900 file://", html_path,
                             " >", dir, "/shot.log 2>&1")), 0)
      << "chromium --screenshot failed; see " << dir << "/shot.log";
  ASSERT_TRUE(std::filesystem::exists(png));
  const auto png_size = std::filesystem::file_size(png);
  EXPECT_GT(png_size, 20000u) << "screenshot suspiciously small (blank page?)";
  std::ifstream f(png, std::ios::binary);
  char magic[8] = {};
  f.read(magic, 8);
  EXPECT_EQ(std::string(magic, 8), std::string("\x89PNG\r\n\x1a\n", 8));

  const std::string dom_path = dir + "/dom.html";
  ASSERT_EQ(RunShell(absl::StrCat(flags, "--dump-dom file://", html_path, " >", dom_path, " 2>", dir, "/dom.log")), 0);
  ASSERT_OK_AND_ASSIGN(std::string dom, ReadFileToString(dom_path));
  // Three classes x two systems of report rows, each with the escaped label text.
  size_t rows = 0;
  for (size_t pos = dom.find("class=\"report-row\""); pos != std::string::npos;
       pos = dom.find("class=\"report-row\"", pos + 1)) {
    ++rows;
  }
  EXPECT_EQ(rows, 6u);
  EXPECT_THAT(dom, HasSubstr("<td class=\"l\">negative</td>"));
  EXPECT_THAT(dom, HasSubstr("&lt;b&gt;positive&lt;/b&gt;"));
  EXPECT_THAT(dom, HasSubstr("macro avg"));
  EXPECT_THAT(dom, HasSubstr("class=\"error-row\""));
  EXPECT_THAT(dom, HasSubstr("Human review"));
  std::printf("screenshot: %s (%ju bytes)\n", png.c_str(), static_cast<uintmax_t>(png_size));
}

}  // namespace
}  // namespace qlorad::eval

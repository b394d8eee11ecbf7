#include "core/eval/html_report.h"

#include <algorithm>
#include <cstdio>

#include "absl/strings/str_cat.h"

namespace qlorad::eval {
namespace {

std::string Fmt(double v, int digits = 4) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

// At most `n` bytes of `s`, never cutting a UTF-8 sequence.
std::string Truncate(const std::string& s, size_t n) {
  if (s.size() <= n) return s;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n) + "\u2026";
}

std::string Signed(double v) { return (v >= 0 ? "+" : "") + Fmt(v); }

std::string Ci(const ConfidenceInterval& ci) {
  return absl::StrCat(Fmt(ci.point), " <span class=\"ci\">[", Fmt(ci.lower), ", ", Fmt(ci.upper), "]</span>");
}

const char* kStyle = R"(
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;margin:24px;color:#1d2330;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d8dde6;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}
table{border-collapse:collapse;margin:6px 0 12px;font-size:13px}
th,td{border:1px solid #d8dde6;padding:4px 8px;text-align:right;vertical-align:top}
th{background:#f2f4f8}td.l,th.l{text-align:left}
td.text{text-align:left;max-width:360px;white-space:pre-wrap;word-break:break-word}
.ci{color:#5b6475;font-size:12px}.pos{color:#1a7f37;font-weight:600}.neg{color:#b42318;font-weight:600}
.muted{color:#5b6475}.warn{background:#fff8e1;border:1px solid #f0d58c;padding:6px 10px;font-size:12px;margin:6px 0}
.unavail{color:#8a5a00;font-style:italic}.grid{display:flex;flex-wrap:wrap;gap:24px}
.meta td{text-align:left}
)";

std::string Row(const std::vector<std::string>& cells, const std::string& cls = "") {
  std::string out = cls.empty() ? "<tr>" : absl::StrCat("<tr class=\"", cls, "\">");
  for (size_t i = 0; i < cells.size(); ++i) absl::StrAppend(&out, i == 0 ? "<td class=\"l\">" : "<td>", cells[i], "</td>");
  return out + "</tr>\n";
}

std::string DeltaSvg(const ConfidenceInterval& d) {
  const double lo = std::min({d.lower, 0.0, d.point}), hi = std::max({d.upper, 0.0, d.point});
  const double span = std::max(hi - lo, 1e-9), pad = span * 0.15;
  const double x0 = lo - pad, x1 = hi + pad;
  auto x = [&](double v) { return 20 + (v - x0) / (x1 - x0) * 460; };
  const bool significant = d.lower > 0 || d.upper < 0;
  const char* color = !significant ? "#5b6475" : (d.lower > 0 ? "#1a7f37" : "#b42318");
  return absl::StrCat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"500\" height=\"70\" role=\"img\" aria-label=\"delta interval\">",
      "<line x1=\"20\" y1=\"40\" x2=\"480\" y2=\"40\" stroke=\"#d8dde6\"/>",
      "<line x1=\"", Fmt(x(0), 1), "\" y1=\"15\" x2=\"", Fmt(x(0), 1), "\" y2=\"60\" stroke=\"#1d2330\" stroke-dasharray=\"3,3\"/>",
      "<text x=\"", Fmt(x(0), 1), "\" y=\"12\" font-size=\"10\" text-anchor=\"middle\">0</text>",
      "<line x1=\"", Fmt(x(d.lower), 1), "\" y1=\"40\" x2=\"", Fmt(x(d.upper), 1), "\" y2=\"40\" stroke=\"", color,
      "\" stroke-width=\"4\"/>", "<circle cx=\"", Fmt(x(d.point), 1), "\" cy=\"40\" r=\"6\" fill=\"", color, "\"/>",
      "<text x=\"", Fmt(x(d.lower), 1), "\" y=\"62\" font-size=\"10\" text-anchor=\"middle\">", Fmt(d.lower, 3), "</text>",
      "<text x=\"", Fmt(x(d.upper), 1), "\" y=\"62\" font-size=\"10\" text-anchor=\"middle\">", Fmt(d.upper, 3), "</text>",
      "</svg>");
}

std::string ConfusionSvg(const ClassificationReport& r, const std::string& title) {
  const size_t k = r.labels.size();
  const int cell = static_cast<int>(std::max<size_t>(28, std::min<size_t>(60, 480 / std::max<size_t>(k, 1))));
  const int left = 110, top = 40;
  const int w = left + cell * static_cast<int>(k) + 20, h = top + cell * static_cast<int>(k) + 40;
  int64_t max_count = 1;
  for (const auto& row : r.confusion)
    for (int64_t v : row) max_count = std::max(max_count, v);
  std::string out = absl::StrCat("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"", w, "\" height=\"", h,
                                 "\" role=\"img\" aria-label=\"confusion matrix ", HtmlEscape(title), "\">");
  absl::StrAppend(&out, "<text x=\"", left, "\" y=\"14\" font-size=\"11\">predicted &#8594;</text>",
                  "<text x=\"4\" y=\"", top - 6, "\" font-size=\"11\">true &#8595;</text>");
  for (size_t j = 0; j < k; ++j) {
    absl::StrAppend(&out, "<text x=\"", left + cell * static_cast<int>(j) + cell / 2, "\" y=\"", top - 6,
                    "\" font-size=\"10\" text-anchor=\"middle\">", HtmlEscape(Truncate(r.labels[j], 10)), "</text>");
  }
  for (size_t i = 0; i < k; ++i) {
    const int y = top + cell * static_cast<int>(i);
    absl::StrAppend(&out, "<text x=\"", left - 6, "\" y=\"", y + cell / 2 + 4, "\" font-size=\"10\" text-anchor=\"end\">",
                    HtmlEscape(Truncate(r.labels[i], 16)), "</text>");
    for (size_t j = 0; j < k; ++j) {
      const int64_t v = r.confusion[i][j];
      const double a = static_cast<double>(v) / static_cast<double>(max_count);
      const char* hue = i == j ? "26,127,55" : "180,35,24";
      absl::StrAppend(&out, "<rect x=\"", left + cell * static_cast<int>(j), "\" y=\"", y, "\" width=\"", cell,
                      "\" height=\"", cell, "\" fill=\"rgba(", hue, ",", Fmt(0.08 + 0.85 * a, 3),
                      ")\" stroke=\"#fff\"><title>true ", HtmlEscape(r.labels[i]), ", predicted ",
                      HtmlEscape(r.labels[j]), ": ", v, "</title></rect>", "<text x=\"",
                      left + cell * static_cast<int>(j) + cell / 2, "\" y=\"", y + cell / 2 + 4,
                      "\" font-size=\"11\" text-anchor=\"middle\" fill=\"", a > 0.55 ? "#fff" : "#1d2330", "\">", v,
                      "</text>");
    }
  }
  return out + "</svg>";
}

std::string F1BarsSvg(const ClassificationReport& base, const ClassificationReport* adapter) {
  const size_t k = base.per_class.size();
  const int row_h = 26, left = 120, width = 320;
  const int h = 30 + row_h * static_cast<int>(k) + 10;
  std::string out = absl::StrCat("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"", left + width + 60, "\" height=\"",
                                 h, "\" role=\"img\" aria-label=\"per-class F1\">");
  absl::StrAppend(&out, "<rect x=\"", left, "\" y=\"6\" width=\"10\" height=\"10\" fill=\"#8c96a8\"/>",
                  "<text x=\"", left + 14, "\" y=\"15\" font-size=\"11\">baseline</text>");
  if (adapter) {
    absl::StrAppend(&out, "<rect x=\"", left + 80, "\" y=\"6\" width=\"10\" height=\"10\" fill=\"#2f6fde\"/>",
                    "<text x=\"", left + 94, "\" y=\"15\" font-size=\"11\">adapter</text>");
  }
  for (size_t i = 0; i < k; ++i) {
    const int y = 26 + row_h * static_cast<int>(i);
    const double b = base.per_class[i].f1;
    absl::StrAppend(&out, "<text x=\"", left - 6, "\" y=\"", y + 14, "\" font-size=\"11\" text-anchor=\"end\">",
                    HtmlEscape(Truncate(base.per_class[i].label, 16)), "</text>", "<rect x=\"", left, "\" y=\"", y,
                    "\" width=\"", Fmt(b * width, 1), "\" height=\"10\" fill=\"#8c96a8\"/>", "<text x=\"",
                    Fmt(left + b * width + 4, 1), "\" y=\"", y + 9, "\" font-size=\"9\">", Fmt(b, 3), "</text>");
    if (adapter && i < adapter->per_class.size()) {
      const double a = adapter->per_class[i].f1;
      absl::StrAppend(&out, "<rect x=\"", left, "\" y=\"", y + 11, "\" width=\"", Fmt(a * width, 1),
                      "\" height=\"10\" fill=\"#2f6fde\"/>", "<text x=\"", Fmt(left + a * width + 4, 1), "\" y=\"",
                      y + 20, "\" font-size=\"9\">", Fmt(a, 3), "</text>");
    }
  }
  return out + "</svg>";
}

std::string ReportTable(const ClassificationReport& r) {
  std::string out =
      "<table><tr><th class=\"l\">label</th><th>precision</th><th>recall</th><th>f1-score</th><th>support</th></tr>\n";
  for (const auto& m : r.per_class) {
    out += Row({HtmlEscape(m.label), Fmt(m.precision), Fmt(m.recall), Fmt(m.f1), std::to_string(m.support)},
               "report-row");
  }
  if (r.accuracy_row) {
    out += Row({"accuracy", "", "", Fmt(r.accuracy), std::to_string(r.micro_avg.support)}, "avg-row");
  } else {
    out += Row({"micro avg", Fmt(r.micro_avg.precision), Fmt(r.micro_avg.recall), Fmt(r.micro_avg.f1),
                std::to_string(r.micro_avg.support)}, "avg-row");
  }
  out += Row({"macro avg", Fmt(r.macro_avg.precision), Fmt(r.macro_avg.recall), Fmt(r.macro_avg.f1),
              std::to_string(r.macro_avg.support)}, "avg-row");
  out += Row({"weighted avg", Fmt(r.weighted_avg.precision), Fmt(r.weighted_avg.recall), Fmt(r.weighted_avg.f1),
              std::to_string(r.weighted_avg.support)}, "avg-row");
  out += "</table>\n";
  for (const auto& w : r.warnings) absl::StrAppend(&out, "<div class=\"warn\">UndefinedMetricWarning: ", HtmlEscape(w), "</div>\n");
  return out;
}

std::string BertScoreCell(const BertScoreResult& b) {
  if (!b.available()) return absl::StrCat("<span class=\"unavail\">unavailable: ", HtmlEscape(b.reason), "</span>");
  return absl::StrCat(Fmt(b.f1), " <span class=\"ci\">(", HtmlEscape(b.encoder), ")</span>");
}

std::string GenerationTable(const EvaluationRecord& rec) {
  const GenerationMetrics& b = *rec.baseline.generation;
  const GenerationMetrics* a = rec.adapter ? &*rec.adapter->generation : nullptr;
  std::string out = absl::StrCat("<table><tr><th class=\"l\">metric</th><th>baseline</th>",
                                 a ? "<th>adapter</th><th>adapter &#8722; baseline</th>" : "", "</tr>\n");
  auto line = [&](const std::string& name, double bv, double av) {
    std::vector<std::string> cells = {name, Fmt(bv)};
    if (a) {
      cells.push_back(Fmt(av));
      cells.push_back(absl::StrCat("<span class=\"", av - bv >= 0 ? "pos" : "neg", "\">", Signed(av - bv), "</span>"));
    }
    out += Row(cells, "report-row");
  };
  line("exact match (SQuAD-normalised)", b.exact_match, a ? a->exact_match : 0);
  line("exact match (strict)", b.strict_exact_match, a ? a->strict_exact_match : 0);
  line("token F1 (SQuAD)", b.token_f1, a ? a->token_f1 : 0);
  line(absl::StrCat("ROUGE-L F", b.rouge_use_stemmer ? " (Porter stemmer)" : ""), b.rouge_l_f, a ? a->rouge_l_f : 0);
  line("ROUGE-L precision", b.rouge_l_precision, a ? a->rouge_l_precision : 0);
  line("ROUGE-L recall", b.rouge_l_recall, a ? a->rouge_l_recall : 0);
  if (b.format_adherence) {
    line(absl::StrCat("format adherence (", HtmlEscape(b.format_description), ")"), *b.format_adherence,
         a && a->format_adherence ? *a->format_adherence : 0);
  }
  std::vector<std::string> bert = {"BERTScore F1", BertScoreCell(rec.baseline.bertscore)};
  if (a) {
    bert.push_back(BertScoreCell(rec.adapter->bertscore));
    bert.push_back("");
  }
  out += Row(bert, "report-row");
  return out + "</table>\n";
}

std::string ReviewSection(const nlohmann::json& review) {
  if (review.is_null() || !review.contains("summary") || review["summary"].is_null()) return "";
  const auto& s = review["summary"];
  std::string out = "<h2>Human review</h2>\n<table class=\"meta\">";
  auto kv = [&](const std::string& k, const std::string& v) {
    absl::StrAppend(&out, "<tr><th class=\"l\">", k, "</th><td>", v, "</td></tr>");
  };
  std::string reviewers;
  for (const auto& r : s.value("reviewers", nlohmann::json::array())) {
    absl::StrAppend(&reviewers, reviewers.empty() ? "" : ", ", HtmlEscape(r.get<std::string>()));
  }
  kv("reviewers", reviewers);
  kv("judgements", std::to_string(s.value("ratings", 0)));
  kv("mean rating baseline / adapter",
     absl::StrCat(Fmt(s.value("mean_baseline_rating", 0.0), 2), " / ", Fmt(s.value("mean_adapter_rating", 0.0), 2)));
  kv("preference adapter / baseline / tie",
     absl::StrCat(s.value("prefer_adapter", 0), " / ", s.value("prefer_baseline", 0), " / ", s.value("ties", 0)));
  for (const char* key : {"rating_agreement", "preference_agreement"}) {
    const auto& a = s.value(key, nlohmann::json());
    if (a.is_null()) {
      kv(key, "<span class=\"unavail\">needs two reviewers</span>");
    } else {
      kv(key, absl::StrCat(Fmt(a["percent_agreement"].get<double>() * 100, 1), "% agreement, Cohen's &#954; = ",
                           a["cohen_kappa"].is_null() ? "undefined" : Fmt(a["cohen_kappa"].get<double>(), 3)));
    }
  }
  return out + "</table>\n";
}

}  // namespace

std::string HtmlEscape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

std::string RenderHtmlReport(const EvaluationRecord& rec) {
  std::string h = absl::StrCat(
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">",
      "<title>qlorad evaluation ", HtmlEscape(rec.id), "</title><style>", kStyle, "</style></head><body>\n");
  absl::StrAppend(&h, "<h1>Evaluation report", rec.adapter ? absl::StrCat(": ", HtmlEscape(rec.adapter_id)) : "",
                  "</h1>\n<div class=\"muted\">", HtmlEscape(TaskKindName(rec.task)), " &#183; ", HtmlEscape(rec.created_at),
                  "</div>\n<table class=\"meta\">");
  for (const auto& [k, v] : std::vector<std::pair<std::string, std::string>>{
           {"record", rec.id}, {"dataset", rec.dataset_id}, {"base model fingerprint", rec.base_fingerprint},
           {"hold-out checksum", rec.holdout_checksum}, {"examples", std::to_string(rec.references.size())},
           {"settings", rec.settings.dump()}, {"baseline key", rec.baseline_key}}) {
    absl::StrAppend(&h, "<tr><th class=\"l\">", k, "</th><td>", HtmlEscape(v), "</td></tr>");
  }
  h += "</table>\n";

  // Headline.
  const ConfidenceInterval& bci = rec.baseline.headline;
  absl::StrAppend(&h, "<h2>Headline: ", HtmlEscape(rec.headline_metric), " (", Fmt(bci.confidence * 100, 0),
                  " % bootstrap intervals, ", bci.resamples, " paired resamples, seed ", bci.seed, ")</h2>\n",
                  "<table id=\"headline\"><tr><th class=\"l\">system</th><th>", HtmlEscape(rec.headline_metric),
                  " [95 % CI]</th></tr>\n");
  h += Row({"baseline (base model, no adapter)", Ci(bci)}, "headline-row");
  if (rec.adapter) h += Row({absl::StrCat("adapter ", HtmlEscape(rec.adapter_id)), Ci(rec.adapter->headline)}, "headline-row");
  if (rec.delta) {
    const auto& d = *rec.delta;
    const char* cls = d.lower > 0 ? "pos" : (d.upper < 0 ? "neg" : "");
    h += Row({"adapter &#8722; baseline",
              absl::StrCat("<span class=\"", cls, "\">", Signed(d.point), "</span> <span class=\"ci\">[", Signed(d.lower),
                           ", ", Signed(d.upper), "]</span>")},
             "headline-row");
  }
  h += "</table>\n";
  if (rec.delta) {
    const auto& d = *rec.delta;
    absl::StrAppend(&h, DeltaSvg(d), "<div class=\"muted\">",
                    d.lower > 0   ? "The interval excludes 0: the improvement is unlikely to be noise."
                    : d.upper < 0 ? "The interval excludes 0: the adapter is worse than the baseline."
                                  : "The interval includes 0: no reliable difference on this hold-out.",
                    "</div>\n");
  }

  if (rec.task == TaskKind::kClassification) {
    h += "<h2>Classification report</h2>\n<div class=\"grid\">";
    absl::StrAppend(&h, "<div><h3>baseline</h3>", ReportTable(*rec.baseline.classification), "</div>");
    if (rec.adapter) {
      absl::StrAppend(&h, "<div><h3>adapter ", HtmlEscape(rec.adapter_id), "</h3>",
                      ReportTable(*rec.adapter->classification), "</div>");
    }
    h += "</div>\n<h2>Confusion matrices (rows: true, columns: predicted)</h2>\n<div class=\"grid\">";
    absl::StrAppend(&h, "<div><h3>baseline</h3>", ConfusionSvg(*rec.baseline.classification, "baseline"), "</div>");
    if (rec.adapter) {
      absl::StrAppend(&h, "<div><h3>adapter</h3>", ConfusionSvg(*rec.adapter->classification, "adapter"), "</div>");
    }
    absl::StrAppend(&h, "</div>\n<h2>Per-class F1</h2>\n",
                    F1BarsSvg(*rec.baseline.classification, rec.adapter ? &*rec.adapter->classification : nullptr), "\n");
  } else {
    absl::StrAppend(&h, "<h2>Generation metrics</h2>\n", GenerationTable(rec));
  }

  absl::StrAppend(&h, "<h2>Sample of errors (", rec.error_sample.size(), ")</h2>\n");
  if (rec.error_sample.empty()) {
    h += "<div class=\"muted\">No errors.</div>\n";
  } else {
    absl::StrAppend(&h, "<table id=\"errors\"><tr><th class=\"l\">id</th><th class=\"l\">input</th>",
                    "<th class=\"l\">reference</th><th class=\"l\">baseline</th>",
                    rec.adapter ? "<th class=\"l\">adapter</th>" : "", "</tr>\n");
    for (const auto& e : rec.error_sample) {
      absl::StrAppend(&h, "<tr class=\"error-row\"><td class=\"l\">", HtmlEscape(e.id), "</td><td class=\"text\">",
                      HtmlEscape(e.input), "</td><td class=\"text\">", HtmlEscape(e.reference),
                      "</td><td class=\"text\">", HtmlEscape(e.baseline_output), "</td>",
                      rec.adapter ? absl::StrCat("<td class=\"text\">", HtmlEscape(e.adapter_output), "</td>") : "",
                      "</tr>\n");
    }
    h += "</table>\n";
  }
  h += ReviewSection(rec.review);
  h += "<div class=\"muted\">Metrics: classification as scikit-learn's classification_report (zero_division &#8594; 0); "
       "ROUGE-L as Google's rouge-score; intervals by percentile bootstrap.</div>\n</body></html>\n";
  return h;
}

}  // namespace qlorad::eval

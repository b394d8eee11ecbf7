// A self-contained HTML report of an evaluation record: inline CSS and inline SVG only
// (no scripts, fonts, images or links to anything outside the file), readable offline.
// Every piece of data (labels, inputs, outputs, ids, notes) is HTML-escaped.
//
// Sections: metadata; headline baseline vs adapter with 95 % intervals and the
// adapter − baseline delta (an SVG interval plot with the zero line); per system the
// classification report table (rows carry class="report-row"), the confusion-matrix
// heatmap (SVG) and grouped per-class F1 bars (SVG) — or the generation metric table;
// BERTScore (or "unavailable" with the reason); sklearn's ill-defined-metric warnings;
// a sample of errors; the human-review summary when present.
#ifndef QLORAD_CORE_EVAL_HTML_REPORT_H_
#define QLORAD_CORE_EVAL_HTML_REPORT_H_

#include <string>

#include "core/eval/evaluation_record.h"

namespace qlorad::eval {

std::string HtmlEscape(const std::string& text);
std::string RenderHtmlReport(const EvaluationRecord& record);

}  // namespace qlorad::eval

#endif  // QLORAD_CORE_EVAL_HTML_REPORT_H_

#include "core/eval/promotion_comparison.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"

namespace qlorad::eval {
namespace {

absl::Status NotComparable(const EvaluationRecord& candidate, const EvaluationRecord& serving, const std::string& what) {
  return absl::FailedPreconditionError(absl::StrCat(
      "evaluation ", candidate.id, " (", candidate.adapter_id, ") is not comparable with ", serving.id, " (",
      serving.adapter_id, "): ", what, " (hint: evaluate the candidate on dataset ", serving.dataset_id,
      " with the serving version's settings: same scoring and max_examples)"));
}

// The explicit label list both records were scored with ("" list: none recorded).
std::vector<std::string> RecordedLabels(const EvaluationRecord& record) {
  std::vector<std::string> labels;
  if (record.settings.is_object() && record.settings.contains("labels") && record.settings["labels"].is_array())
    for (const auto& label : record.settings["labels"])
      if (label.is_string()) labels.push_back(label.get<std::string>());
  return labels;
}

}  // namespace

absl::Status CheckComparable(const EvaluationRecord& candidate, const EvaluationRecord& serving) {
  if (!candidate.adapter) return NotComparable(candidate, serving, "the candidate's record has no adapter results");
  if (!serving.adapter) return NotComparable(candidate, serving, "the serving record has no adapter results");
  if (candidate.holdout_checksum != serving.holdout_checksum)
    return NotComparable(candidate, serving, "the hold-outs differ (checksums " + candidate.holdout_checksum.substr(0, 12) +
                                                 " vs " + serving.holdout_checksum.substr(0, 12) + ")");
  if (candidate.base_fingerprint != serving.base_fingerprint)
    return NotComparable(candidate, serving, "the base models differ");
  if (candidate.baseline_key != serving.baseline_key)
    return NotComparable(candidate, serving,
                         absl::StrCat("the settings differ (", candidate.settings.dump(), " vs ", serving.settings.dump(), ")"));
  if (candidate.headline_metric != serving.headline_metric)
    return NotComparable(candidate, serving,
                         "the headline metrics differ (" + candidate.headline_metric + " vs " + serving.headline_metric + ")");
  if (candidate.example_ids != serving.example_ids)
    return NotComparable(candidate, serving, "the hold-out example ids differ");
  return absl::OkStatus();
}

absl::StatusOr<PromotionComparison> ComparePromotion(const EvaluationRecord& candidate, const EvaluationRecord& serving,
                                                     const BootstrapOptions& options) {
  QLORAD_RETURN_IF_ERROR(CheckComparable(candidate, serving));
  const std::vector<std::string> labels = RecordedLabels(serving);
  QLORAD_ASSIGN_OR_RETURN(IndexedMetric candidate_metric, HeadlineMetricOf(candidate, *candidate.adapter, labels));
  QLORAD_ASSIGN_OR_RETURN(IndexedMetric serving_metric, HeadlineMetricOf(serving, *serving.adapter, labels));
  PromotionComparison out;
  out.metric = serving.headline_metric;
  QLORAD_ASSIGN_OR_RETURN(out.candidate_value, HeadlineValue(*candidate.adapter, out.metric));
  QLORAD_ASSIGN_OR_RETURN(out.serving_value, HeadlineValue(*serving.adapter, out.metric));
  QLORAD_ASSIGN_OR_RETURN(out.delta, BootstrapDifference(candidate.references.size(), candidate_metric, serving_metric,
                                                         options));
  return out;
}

}  // namespace qlorad::eval

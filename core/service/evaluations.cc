// ServiceCoreImpl: the evaluation calls, forwarded to core/eval's EvaluationRunner (the
// "baseline" and "evaluate" steps and human review) with the adapter made ready on the
// engine first; results converted to the front end's types and audited.
#include "absl/strings/str_cat.h"
#include "core/service/audit.h"
#include "core/service/core_impl.h"
#include "core/service/ids.h"
#include "core/util/status_macros.h"

namespace qlorad::service {
namespace {

EvaluationInfo ToEvaluationInfo(const eval::EvaluationRecord& r, const std::string& report_path) {
  EvaluationInfo info;
  info.id = r.id;
  info.dataset_id = r.dataset_id;
  info.adapter_id = r.adapter_id;
  info.created_at = r.created_at;
  info.headline_metric = r.headline_metric;
  info.report_path = report_path;
  info.baseline_value = r.baseline.headline.point;
  info.has_adapter = r.adapter.has_value();
  if (r.adapter) info.adapter_value = r.adapter->headline.point;
  if (r.delta) info.delta_low = r.delta->lower, info.delta_high = r.delta->upper;
  info.record = eval::EvaluationRecordToJson(r);
  return info;
}

}  // namespace

absl::StatusOr<EvaluationInfo> ServiceCoreImpl::Evaluate(const EvaluationInput& input) {
  QLORAD_RETURN_IF_ERROR(eval::EvaluationRunner::CheckScoring(input.scoring));
  QLORAD_ASSIGN_OR_RETURN(DatasetInfo dataset, GetDataset(input.dataset_id));
  std::string adapter_id;
  if (!input.adapter.empty()) {
    QLORAD_ASSIGN_OR_RETURN(adapter_id, adapters_->Resolve(input.adapter));
    QLORAD_ASSIGN_OR_RETURN(AdapterRow row, adapters_->Row(adapter_id));
    QLORAD_RETURN_IF_ERROR(adapters_->EngineLoad(adapter_id, row.path, false));
  }
  const eval::EvaluationRequest request{NewId("eval"), input.dataset_id, dataset.holdout_sha256, dataset.manifest,
                                        adapter_id, input.scoring, input.max_examples, input.actor};
  QLORAD_ASSIGN_OR_RETURN(eval::EvaluationRecord record, evaluations_->Evaluate(request));
  QLORAD_ASSIGN_OR_RETURN(std::string report, evaluations_->ReportPath(record.id));
  return ToEvaluationInfo(record, report);
}

absl::StatusOr<EvaluationInfo> ServiceCoreImpl::GetEvaluation(const std::string& id) {
  QLORAD_ASSIGN_OR_RETURN(eval::EvaluationRecord record, evaluations_->Get(id));
  QLORAD_ASSIGN_OR_RETURN(std::string report, evaluations_->ReportPath(id));
  return ToEvaluationInfo(record, report);
}

absl::StatusOr<ReviewExport> ServiceCoreImpl::ExportReviewSample(const ReviewExportInput& input) {
  eval::ReviewExportOptions options;
  options.sample_size = input.sample_size;
  options.seed = input.seed;
  options.blind = input.blind;
  QLORAD_ASSIGN_OR_RETURN(eval::ReviewSample sample, evaluations_->ExportReviewSample(input.evaluation_id, options, Now()));
  QLORAD_RETURN_IF_ERROR(Audit(*db_, input.actor, "export_review_sample", "evaluation:" + input.evaluation_id,
                               {{"items", sample.items.size()}, {"blind", sample.blind}, {"seed", sample.seed}}));
  return ReviewExport{eval::ReviewSampleToCsv(sample), eval::ReviewSampleToJsonl(sample), sample.note,
                      static_cast<int64_t>(sample.items.size()), sample.blind};
}

absl::StatusOr<nlohmann::json> ServiceCoreImpl::ImportReviews(const std::string& evaluation_id,
                                                             const std::vector<ReviewerFile>& files, const std::string& actor) {
  std::vector<eval::ReviewerRatings> ratings;
  for (const ReviewerFile& file : files) ratings.push_back({file.reviewer, file.format, file.content});
  QLORAD_ASSIGN_OR_RETURN(nlohmann::json section, evaluations_->ImportReviews(evaluation_id, ratings, Now()));
  const nlohmann::json summary = section.value("summary", nlohmann::json::object());
  QLORAD_RETURN_IF_ERROR(Audit(*db_, actor, "import_reviews", "evaluation:" + evaluation_id,
                               {{"reviewers", summary.value("reviewers", nlohmann::json())},
                                {"ratings", summary.value("ratings", nlohmann::json())}}));
  return section;
}

}  // namespace qlorad::service

// EvaluationRunner: human review of an evaluation — a seeded (optionally blind) sample of
// hold-out items with both systems' outputs goes out; reviewers' ratings come back and
// their summary (agreement included) is stored beside the record.
#include "absl/strings/str_cat.h"
#include "core/eval/evaluation_runner.h"
#include "core/util/path_name.h"
#include "core/util/status_macros.h"

namespace qlorad::eval {

absl::StatusOr<ReviewSample> EvaluationRunner::ExportReviewSample(const std::string& evaluation_id,
                                                                  const ReviewExportOptions& options,
                                                                  const std::string& at) {
  QLORAD_ASSIGN_OR_RETURN(nlohmann::json json, StoredRecordJson(evaluation_id));
  QLORAD_ASSIGN_OR_RETURN(EvaluationRecord record, EvaluationRecordFromJson(json));
  if (!record.adapter)
    return absl::FailedPreconditionError(absl::StrCat("evaluation '", evaluation_id,
                                                      "' has no adapter outputs to review (hint: evaluate with an adapter)"));
  QLORAD_ASSIGN_OR_RETURN(HoldoutItems items, ReadHoldout(*datasets_, record.dataset_id,
                                                          static_cast<int64_t>(record.example_ids.size())));
  if (items.ids != record.example_ids)
    return absl::FailedPreconditionError(absl::StrCat("dataset '", record.dataset_id, "' hold-out no longer matches the evaluation"));
  std::vector<ReviewItem> holdout;
  for (size_t i = 0; i < items.ids.size(); ++i)
    holdout.push_back({items.ids[i], items.inputs[i].empty() ? items.prompts[i] : items.prompts[i] + "\n\n" + items.inputs[i],
                       record.references[i], record.baseline.outputs[i], record.adapter->outputs[i]});
  QLORAD_ASSIGN_OR_RETURN(ReviewSample sample, SelectReviewSample(holdout, options));
  QLORAD_RETURN_IF_ERROR(reviews_.PutSample(evaluation_id, ReviewSampleToJson(sample), at));
  return sample;
}

absl::StatusOr<nlohmann::json> EvaluationRunner::ImportReviews(const std::string& evaluation_id,
                                                              const std::vector<ReviewerRatings>& files,
                                                              const std::string& at) {
  QLORAD_RETURN_IF_ERROR(ValidatePathName("evaluation_id", evaluation_id));
  if (files.empty()) return absl::InvalidArgumentError("files: at least one reviewer file is required");
  QLORAD_ASSIGN_OR_RETURN(nlohmann::json sample_json, reviews_.GetSample(evaluation_id));
  QLORAD_ASSIGN_OR_RETURN(ReviewSample sample, ReviewSampleFromJson(sample_json));
  std::vector<Rating> ratings;
  for (const ReviewerRatings& file : files) {
    if (file.reviewer.empty()) return absl::InvalidArgumentError("files.reviewer: must name the reviewer");
    absl::StatusOr<std::vector<Rating>> parsed =
        file.format == "jsonl" ? ImportRatingsJsonl(sample, file.reviewer, file.content)
        : file.format == "csv" || file.format.empty()
            ? ImportRatingsCsv(sample, file.reviewer, file.content)
            : absl::InvalidArgumentError(absl::StrCat("files.format: '", file.format, "' is not csv or jsonl"));
    if (!parsed.ok())
      return absl::Status(parsed.status().code(), absl::StrCat("reviewer '", file.reviewer, "': ", parsed.status().message()));
    ratings.insert(ratings.end(), parsed->begin(), parsed->end());
  }
  QLORAD_ASSIGN_OR_RETURN(ReviewSummary summary, SummariseReview(ratings));
  nlohmann::json section = ReviewRecordSection(sample, &summary);
  QLORAD_RETURN_IF_ERROR(reviews_.AddReview(evaluation_id, section, at));
  return section;
}

}  // namespace qlorad::eval

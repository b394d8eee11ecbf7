// Writing an evaluation's files: the JSON record, the HTML report and the human-review
// export. Every file is written atomically (temp file + rename).
//
//   WriteEvaluationArtifacts(record, dir): dir/evaluation.json, dir/report.html
//   WriteReviewExport(sample, dir):        dir/review.csv, dir/review.jsonl and, for a
//     blind sample, dir/review_key.json — the key is a SEPARATE file so the CSV/JSONL
//     can be handed to reviewers without it (it is also kept in the record).
#ifndef QLORAD_CORE_EVAL_ARTIFACTS_H_
#define QLORAD_CORE_EVAL_ARTIFACTS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/eval/evaluation_record.h"
#include "core/eval/review.h"

namespace qlorad::eval {

absl::Status WriteEvaluationArtifacts(const EvaluationRecord& record, const std::string& dir);
absl::Status WriteReviewExport(const ReviewSample& sample, const std::string& dir);
// Reads dir/evaluation.json (or any record file) back.
absl::StatusOr<EvaluationRecord> ReadEvaluationRecord(const std::string& path);

}  // namespace qlorad::eval

#endif  // QLORAD_CORE_EVAL_ARTIFACTS_H_

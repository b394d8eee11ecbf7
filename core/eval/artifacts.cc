#include "core/eval/artifacts.h"

#include "absl/strings/str_cat.h"
#include "core/eval/html_report.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"

namespace qlorad::eval {

absl::Status WriteEvaluationArtifacts(const EvaluationRecord& record, const std::string& dir) {
  QLORAD_RETURN_IF_ERROR(EnsureDirectory(dir));
  QLORAD_RETURN_IF_ERROR(WriteFileAtomically(dir + "/evaluation.json", EvaluationRecordToJson(record).dump(2) + "\n"));
  return WriteFileAtomically(dir + "/report.html", RenderHtmlReport(record));
}

absl::Status WriteReviewExport(const ReviewSample& sample, const std::string& dir) {
  QLORAD_RETURN_IF_ERROR(EnsureDirectory(dir));
  QLORAD_RETURN_IF_ERROR(WriteFileAtomically(dir + "/review.csv", ReviewSampleToCsv(sample)));
  QLORAD_RETURN_IF_ERROR(WriteFileAtomically(dir + "/review.jsonl", ReviewSampleToJsonl(sample)));
  if (sample.blind) {
    QLORAD_RETURN_IF_ERROR(WriteFileAtomically(dir + "/review_key.json", ReviewKeyToJson(sample).dump(2) + "\n"));
  }
  return absl::OkStatus();
}

absl::StatusOr<EvaluationRecord> ReadEvaluationRecord(const std::string& path) {
  QLORAD_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(path, ": not valid JSON"));
  auto record = EvaluationRecordFromJson(j);
  if (!record.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": ", record.status().message()));
  return record;
}

}  // namespace qlorad::eval

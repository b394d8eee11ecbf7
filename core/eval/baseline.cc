// EvaluationRunner: the "baseline" step — the base model's outputs on a hold-out are
// computed once per baseline key (base fingerprint, hold-out checksum, settings) and
// reused from the newest stored baseline record for every later evaluation.
#include <optional>

#include "core/eval/evaluation_runner.h"
#include "core/store/evaluation_repository.h"
#include "core/util/status_macros.h"

namespace qlorad::eval {

absl::StatusOr<std::vector<std::string>> EvaluationRunner::BaselineOutputs(const std::string& key,
                                                                           const HoldoutItems& items,
                                                                           const std::vector<std::string>& labels,
                                                                           const std::string& scoring) {
  QLORAD_ASSIGN_OR_RETURN(std::optional<store::StoredEvaluation> prior,
                          db_->Read<std::optional<store::StoredEvaluation>>(
                              [&](store::Store& s) { return store::EvaluationRepository(&s).FindLatestBaseline(key); }));
  if (!prior) return SystemOutputs(items, labels, "", scoring);
  // The baseline for this triple was computed before: reuse its outputs.
  QLORAD_ASSIGN_OR_RETURN(EvaluationRecord previous, EvaluationRecordFromJson(nlohmann::json::parse(prior->record_json)));
  return previous.baseline.outputs;
}

}  // namespace qlorad::eval

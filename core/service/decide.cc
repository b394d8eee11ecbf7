// AdapterCatalog: the "decide" step — approve or reject an evaluated adapter. One
// lifecycle transaction with one audit entry (core/store AdapterLifecycle) that also
// records the evidence the decider saw; nothing is added here.
#include "absl/strings/str_cat.h"
#include "core/service/adapter_catalog.h"
#include "core/util/status_macros.h"

namespace qlorad::service {

absl::StatusOr<AdapterInfo> AdapterCatalog::Decide(const std::string& ref, bool approve, const DecisionInput& input) {
  QLORAD_ASSIGN_OR_RETURN(std::string id, Resolve(ref));
  store::Decision decision;
  decision.actor = input.actor;
  decision.note = input.note;
  decision.documentation_ref = input.documentation_ref;
  decision.evidence_evaluation_ids = input.evidence_evaluation_ids;
  decision.evidence_review_summary = input.evidence_review_summary;
  auto risk = store::ParseRiskClass(input.risk_class.empty() ? "minimal" : input.risk_class);
  if (!risk.ok()) return absl::InvalidArgumentError(absl::StrCat("risk_class: ", risk.status().message()));
  decision.risk_class = *risk;
  QLORAD_RETURN_IF_ERROR(approve ? store_->Approve(id, decision) : store_->Reject(id, decision));
  return Get(id);
}

}  // namespace qlorad::service

// ServiceCoreImpl::Promote / CheckPromotion: the CI gate (promotion_gate.h) in front of
// the catalog's promote. A refusal without an override reason changes nothing; an
// override is recorded with the verdict and the reason in the promote's own audit entry
// (one transaction), and the alias moves only if it still points where the gate saw it.
#include "absl/strings/str_cat.h"
#include "core/service/core_impl.h"

namespace qlorad::service {

absl::StatusOr<PromotionCheck> ServiceCoreImpl::CheckPromotion(const std::string& ref, const std::string& alias) {
  QLORAD_RETURN_IF_ERROR(store::AdapterStore::CheckAlias(alias));
  QLORAD_ASSIGN_OR_RETURN(std::string id, adapters_->Resolve(ref));
  return gate_->Check(id, alias);
}

absl::StatusOr<PromoteResult> ServiceCoreImpl::Promote(const PromoteInput& input) {
  PromoteResult result;
  QLORAD_ASSIGN_OR_RETURN(result.gate, CheckPromotion(input.adapter, input.alias));
  if (!result.gate.passed) {
    if (input.override_reason.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          result.gate.message, " (hint: a deployer may promote anyway with a reason, recorded in the audit log: ",
          "qloractl adapters promote ", result.gate.candidate_id, " ", input.alias, " --override-reason '...')"));
    }
    result.gate.overridden = true;
  }
  store::PromoteGuard guard;
  guard.expected_target = result.gate.serving_id;
  guard.details["gate"] = PromotionCheckToJson(result.gate);
  if (result.gate.overridden) guard.details["override_reason"] = input.override_reason;
  QLORAD_ASSIGN_OR_RETURN(result.adapter, adapters_->Promote(result.gate.candidate_id, input.alias, input.actor, guard));
  return result;
}

}  // namespace qlorad::service

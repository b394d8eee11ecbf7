#include "core/store/lifecycle.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace qlorad::store {

const char* AdapterStateName(AdapterState s) {
  switch (s) {
    case AdapterState::kTrained: return "trained";
    case AdapterState::kEvaluated: return "evaluated";
    case AdapterState::kApproved: return "approved";
    case AdapterState::kRejected: return "rejected";
    case AdapterState::kDeployed: return "deployed";
    case AdapterState::kRetired: return "retired";
  }
  return "unknown";
}

absl::StatusOr<AdapterState> ParseAdapterState(const std::string& name) {
  for (AdapterState s : {AdapterState::kTrained, AdapterState::kEvaluated, AdapterState::kApproved,
                         AdapterState::kRejected, AdapterState::kDeployed, AdapterState::kRetired}) {
    if (name == AdapterStateName(s)) return s;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown adapter state '", name, "'"));
}

const char* RiskClassName(RiskClass r) {
  switch (r) {
    case RiskClass::kMinimal: return "minimal";
    case RiskClass::kLimited: return "limited";
    case RiskClass::kHigh: return "high";
    case RiskClass::kUnacceptable: return "unacceptable";
  }
  return "unknown";
}

absl::StatusOr<RiskClass> ParseRiskClass(const std::string& name) {
  for (RiskClass r : {RiskClass::kMinimal, RiskClass::kLimited, RiskClass::kHigh, RiskClass::kUnacceptable}) {
    if (name == RiskClassName(r)) return r;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("risk_class: unknown value '", name, "' (allowed: minimal, limited, high, unacceptable)"));
}

std::vector<AdapterState> AllowedNextStates(AdapterState from, const DeploymentPolicy& policy) {
  using S = AdapterState;
  switch (from) {
    case S::kTrained: return {S::kEvaluated, S::kRetired};
    case S::kEvaluated:
      if (policy.require_approval) return {S::kEvaluated, S::kApproved, S::kRejected, S::kRetired};
      return {S::kEvaluated, S::kApproved, S::kRejected, S::kDeployed, S::kRetired};
    case S::kApproved: return {S::kDeployed, S::kEvaluated, S::kRetired};
    case S::kRejected: return {S::kEvaluated, S::kRetired};
    case S::kDeployed: return {S::kRetired};
    case S::kRetired: return {};
  }
  return {};
}

absl::Status CheckTransition(const std::string& adapter_id, AdapterState from, AdapterState to,
                             const DeploymentPolicy& policy) {
  const auto allowed = AllowedNextStates(from, policy);
  if (std::find(allowed.begin(), allowed.end(), to) != allowed.end()) return absl::OkStatus();
  std::vector<std::string> names;
  for (AdapterState s : allowed) names.push_back(AdapterStateName(s));
  const std::string allowed_text = names.empty() ? "none: it is terminal" : absl::StrJoin(names, ", ");
  std::string hint;
  if (to == AdapterState::kDeployed && from == AdapterState::kEvaluated && policy.require_approval) {
    hint = " (the deployment policy requires approval: approve the adapter first)";
  } else if (to == AdapterState::kDeployed && from == AdapterState::kRejected) {
    hint = " (a rejected adapter is never deployed: re-evaluate and approve it first)";
  }
  return absl::FailedPreconditionError(absl::StrCat("adapter '", adapter_id, "' is in state '", AdapterStateName(from),
                                                    "'; '", AdapterStateName(to), "' is not allowed from there (allowed: ",
                                                    allowed_text, ")", hint));
}

}  // namespace qlorad::store

// Adapter lifecycle rules (pure; no storage): states, legal transitions, risk classes
// and the deployment policy. AdapterLifecycle (adapter_lifecycle.h) enforces them on
// the store and writes every transition to the audit log.
//
// States and legal transitions (anything else is FAILED_PRECONDITION naming the
// current state and the allowed next states):
//   trained   -> evaluated | retired
//   evaluated -> evaluated (re-evaluation, new record) | approved | rejected | retired
//                | deployed (only when the deployment policy does not require approval)
//   approved  -> deployed | evaluated (re-evaluation revokes the approval) | retired
//   rejected  -> evaluated (re-evaluation, e.g. after fixing the evaluation set; a new
//                decision is then needed — a rejection is never turned into an approval
//                directly) | retired
//   deployed  -> retired (to serve again, register and approve a new version)
//   retired   -> (terminal)
// Decisions: approve/reject record who, when (UTC), the decision, a note (required
// for a rejection), the risk class and, for high-risk systems (EU AI Act Annex III),
// a documentation link/reference (required to approve). Unacceptable-risk systems
// (prohibited practices, EU AI Act Art. 5) can never be approved.
#ifndef QLORAD_CORE_STORE_LIFECYCLE_H_
#define QLORAD_CORE_STORE_LIFECYCLE_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace qlorad::store {

enum class AdapterState { kTrained, kEvaluated, kApproved, kRejected, kDeployed, kRetired };

const char* AdapterStateName(AdapterState s);
absl::StatusOr<AdapterState> ParseAdapterState(const std::string& name);

enum class RiskClass { kMinimal, kLimited, kHigh, kUnacceptable };
const char* RiskClassName(RiskClass r);
absl::StatusOr<RiskClass> ParseRiskClass(const std::string& name);

struct DeploymentPolicy {
  bool require_approval = true;  // default on
};

// The states reachable from `from` under `policy`.
std::vector<AdapterState> AllowedNextStates(AdapterState from, const DeploymentPolicy& policy = {});

// OK or FAILED_PRECONDITION: "adapter 'id' is in state 'trained'; 'approved' is not
// allowed from there (allowed: evaluated, retired)". When deployment is refused only
// because the policy requires approval, the message says so.
absl::Status CheckTransition(const std::string& adapter_id, AdapterState from, AdapterState to,
                             const DeploymentPolicy& policy = {});

}  // namespace qlorad::store

#endif  // QLORAD_CORE_STORE_LIFECYCLE_H_

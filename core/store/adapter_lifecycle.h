// The adapter lifecycle repository: adapter versions move through the states of
// lifecycle.h; each transition is checked, stored and appended to the audit log in ONE
// transaction (a refused or failed transition changes nothing and logs nothing).
//
// Errors: NOT_FOUND for an unknown adapter; ALREADY_EXISTS when registering twice;
// FAILED_PRECONDITION for an illegal transition (naming the current state and the
// allowed ones), for deploying an unapproved adapter when the policy requires approval,
// and for approving an unacceptable-risk system; INVALID_ARGUMENT (naming the field)
// for an empty actor, evaluation id, rejection note, deployment name, or a high-risk
// approval without documentation_ref.
#ifndef QLORAD_CORE_STORE_ADAPTER_LIFECYCLE_H_
#define QLORAD_CORE_STORE_ADAPTER_LIFECYCLE_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/store/audit_log.h"
#include "core/store/lifecycle.h"
#include "core/store/store.h"
#include "nlohmann/json.hpp"

namespace qlorad::store {

struct Decision {
  std::string actor;              // who decides (required)
  std::string note;               // required for a rejection
  RiskClass risk_class = RiskClass::kMinimal;
  std::string documentation_ref;  // required to approve a high-risk system
  // The evidence the decider saw, recorded in the decision's audit entry
  // (details.evidence = {"evaluation_ids": [...], "review_summary": JSON or null}).
  std::vector<std::string> evidence_evaluation_ids;
  nlohmann::json evidence_review_summary;
};

struct DecisionRecord {
  std::string adapter_id;
  std::string decision;  // "approved" | "rejected"
  std::string actor;
  std::string decided_at;  // RFC 3339 UTC
  std::string note;
  std::string risk_class;
  std::string documentation_ref;
  std::string evaluation_id;
};

struct AdapterVersion {
  std::string adapter_id;
  AdapterState state = AdapterState::kTrained;
  std::string evaluation_id;
  std::string risk_class;
  std::string deployment;
  std::string created_at;
  std::string updated_at;
};

class AdapterLifecycle {
 public:
  using Clock = std::function<std::string()>;  // RFC 3339 UTC "now"

  // `store` must have CoreMigrations() applied and outlive this object.
  // `clock` defaults to the system clock.
  explicit AdapterLifecycle(Store* store, Clock clock = nullptr);

  absl::Status RegisterTrained(const std::string& adapter_id, const std::string& actor,
                               const nlohmann::json& details = nlohmann::json::object());
  absl::Status MarkEvaluated(const std::string& adapter_id, const std::string& actor, const std::string& evaluation_id);
  absl::Status Approve(const std::string& adapter_id, const Decision& decision);
  absl::Status Reject(const std::string& adapter_id, const Decision& decision);
  absl::Status Deploy(const std::string& adapter_id, const std::string& actor, const std::string& deployment,
                      const DeploymentPolicy& policy = {});
  absl::Status Retire(const std::string& adapter_id, const std::string& actor, const std::string& reason);

  // Extra SQL of a composite transition (the adapter store's promote and delete), run in
  // the transition's transaction after its checks passed and before its audit entry.
  using Apply = std::function<absl::Status(const AdapterVersion& current, const std::string& now)>;
  // Deploy / Retire audited under `action` with `details` added to the entry: the
  // transition, `apply` and ONE audit entry commit together or not at all.
  absl::Status DeployAs(const std::string& adapter_id, const std::string& actor, const std::string& deployment,
                        const DeploymentPolicy& policy, const std::string& action, const nlohmann::json& details,
                        const Apply& apply);
  absl::Status RetireAs(const std::string& adapter_id, const std::string& actor, const std::string& action,
                        const nlohmann::json& details, const Apply& apply);

  absl::StatusOr<AdapterVersion> Get(const std::string& adapter_id);
  absl::StatusOr<std::vector<DecisionRecord>> Decisions(const std::string& adapter_id);
  AuditLog& audit() { return audit_; }

  static std::string SystemClockNow();

 private:
  // Checks + applies one transition and its audit entry atomically. `apply` runs extra
  // SQL inside the transaction after the checks passed.
  absl::Status Transition(const std::string& adapter_id, const std::string& actor, const std::string& action,
                          AdapterState to, const DeploymentPolicy& policy, nlohmann::json details, const Apply& apply);
  absl::Status Decide(const std::string& adapter_id, const Decision& decision, bool approve);

  Store* store_;
  Clock clock_;
  AuditLog audit_;
};

}  // namespace qlorad::store

#endif  // QLORAD_CORE_STORE_ADAPTER_LIFECYCLE_H_

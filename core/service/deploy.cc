// AdapterCatalog: the "deploy" step — promote an adapter to an alias, and delete one.
//
// Promote: the transition is checked first (a refusal changes nothing), then the
// adapter is loaded on the engine (a refused load changes nothing; requests on the alias
// never find it absent), then ONE store transaction deploys it (if not yet deployed),
// marks it loaded and points the alias at it, with ONE audit entry.
// Delete: ONE store transaction (refused while an alias names it) removes the row and
// retires the lifecycle record with one audit entry; then the engine drops it.
#include "core/service/adapter_catalog.h"
#include "core/util/status_macros.h"

namespace qlorad::service {

absl::StatusOr<AdapterInfo> AdapterCatalog::Promote(const std::string& ref, const std::string& alias,
                                                    const std::string& actor, const store::PromoteGuard& guard) {
  QLORAD_RETURN_IF_ERROR(store::AdapterStore::CheckAlias(alias));  // refused before the engine load
  QLORAD_ASSIGN_OR_RETURN(std::string id, Resolve(ref));
  QLORAD_ASSIGN_OR_RETURN(AdapterRow row, store_->Get(id));
  QLORAD_ASSIGN_OR_RETURN(store::AdapterVersion before, store_->Version(id));
  store::DeploymentPolicy policy;
  policy.require_approval = options_.require_approval;
  if (before.state != store::AdapterState::kDeployed)  // refused before anything changes
    QLORAD_RETURN_IF_ERROR(store::CheckTransition(id, before.state, store::AdapterState::kDeployed, policy));
  const bool was_loaded = engine_->IsLoaded(id);
  QLORAD_RETURN_IF_ERROR(EngineLoad(id, row.path, false));
  WatchDrift(id, row.path);
  absl::Status promoted = store_->Promote(id, alias, actor.empty() ? "system" : actor, policy, guard);
  if (!promoted.ok()) {
    if (!was_loaded) {  // residency follows the store: undo the load the failed promote made
      (void)engine_->UnloadAdapter(id);
      drift_->Unwatch(id);
    }
    return promoted;
  }
  return Get(id);
}

absl::Status AdapterCatalog::Delete(const std::string& ref, const std::string& actor) {
  QLORAD_ASSIGN_OR_RETURN(std::string id, Resolve(ref));
  QLORAD_ASSIGN_OR_RETURN(AdapterRow row, store_->Get(id));
  QLORAD_RETURN_IF_ERROR(store_->Delete(id, actor.empty() ? "system" : actor, {{"path", row.path}}));
  (void)engine_->UnloadAdapter(id);
  drift_->Unwatch(id);
  return absl::OkStatus();
}

}  // namespace qlorad::service

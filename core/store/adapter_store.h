// AdapterStore: the one owner of an adapter's stored state — its row (name@version,
// files, loaded flag), its aliases and its lifecycle (adapter_lifecycle.h) — in the
// daemon database (daemon_migrations.h). Every write below is ONE SQLite transaction
// that appends exactly ONE audit entry; a refused or failed write changes nothing and
// logs nothing. Thread-safe (through SharedStore).
//
// Audit actions written here (entity "adapter"):
//   register        (row inserted; -> trained)
//   promote_deploy  (X -> deployed, loaded = 1, alias set; details: alias, previous_target,
//                    plus the guard's details, e.g. the CI gate's verdict and override reason)
//   promote         (already deployed: loaded = 1, alias moved; from = to = deployed)
//   load / unload / reload_failed (loaded flag only; no state)
//   delete          (row removed; X -> retired, or retired -> retired)
// approve / reject / evaluate are AdapterLifecycle's own single-transaction transitions.
//
// Engine residency is not stored here: `loaded` is the wish the daemon rebuilds the
// engine from on start.
#ifndef QLORAD_CORE_STORE_ADAPTER_STORE_H_
#define QLORAD_CORE_STORE_ADAPTER_STORE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/store/adapter_lifecycle.h"
#include "core/store/shared_store.h"
#include "nlohmann/json.hpp"

namespace qlorad::store {

struct AdapterRow {
  std::string id;  // name@version
  std::string name;
  int64_t version = 0;
  std::string job_id, path, base_fingerprint, dataset_id, created_at;
  bool loaded = false;
};

// What a promote must find and record beyond the move itself (the CI gate's verdict).
struct PromoteGuard {
  // Set: inside the transaction the alias must still point at this adapter ("" = at
  // none), else ABORTED (a concurrent promote moved it; the caller re-checks).
  std::optional<std::string> expected_target;
  nlohmann::json details = nlohmann::json::object();  // merged into the audit entry's details
};

class AdapterStore {
 public:
  // `db` must have DaemonDatabaseMigrations() applied and outlive this object.
  explicit AdapterStore(SharedStore* db, AdapterLifecycle::Clock clock = nullptr);

  // The next free version of `name`: above every stored row and every lifecycle record
  // (a deleted version is retired, never reused).
  absl::StatusOr<int64_t> NextVersion(const std::string& name);
  absl::StatusOr<AdapterRow> Get(const std::string& id);  // NOT_FOUND naming it
  absl::StatusOr<std::vector<AdapterRow>> List(const std::string& after_id, int64_t limit);
  absl::StatusOr<int64_t> Count();
  absl::StatusOr<std::optional<std::string>> ResolveAlias(const std::string& alias);
  absl::StatusOr<std::vector<std::string>> AliasesOf(const std::string& adapter_id);
  absl::StatusOr<AdapterVersion> Version(const std::string& adapter_id);
  // The adapter a training job registered (nullopt: none), for restart recovery.
  absl::StatusOr<std::optional<std::string>> IdOfJob(const std::string& job_id);

  // Inserts the row and registers it as trained (audit "register" with `details`).
  absl::Status Register(const AdapterRow& row, const std::string& actor, const nlohmann::json& details);
  // INVALID_ARGUMENT naming `alias` unless it is non-empty and has no '@' (Promote checks
  // it too; callers check first to refuse before loading anything).
  static absl::Status CheckAlias(const std::string& alias);
  // Deploys (if not yet deployed, checked against `policy`), sets loaded = 1 and points
  // `alias` at the adapter. The caller loads the adapter on the engine BEFORE this.
  absl::Status Promote(const std::string& id, const std::string& alias, const std::string& actor,
                       const DeploymentPolicy& policy, const PromoteGuard& guard = {});
  // Sets the loaded flag, audited as `action` ("load", "unload", "reload_failed").
  absl::Status SetLoaded(const std::string& id, bool loaded, const std::string& actor, const std::string& action,
                         const nlohmann::json& details);
  // FAILED_PRECONDITION while an alias names the adapter; otherwise removes the row and
  // retires the lifecycle record (audit "delete" with `details`).
  absl::Status Delete(const std::string& id, const std::string& actor, const nlohmann::json& details);
  absl::Status Approve(const std::string& id, const Decision& decision);
  absl::Status Reject(const std::string& id, const Decision& decision);

 private:
  SharedStore* db_;
  AdapterLifecycle::Clock clock_;
};

}  // namespace qlorad::store

#endif  // QLORAD_CORE_STORE_ADAPTER_STORE_H_

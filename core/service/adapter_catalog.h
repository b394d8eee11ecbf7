// AdapterCatalog: the service's view of adapters — resolving an id or alias, describing
// (stored row + lifecycle state + engine residency), and every workflow step that
// changes an adapter: register (a finished job, import, upload), decide (decide.cc),
// deploy = promote / delete (deploy.cc), engine residency (residency.cc), export
// (adapter_export.cc). Stored state is core/store's AdapterStore (one transaction and
// one audit entry per change); engine residency is derived from its loaded flags and
// rebuilt by Reload() on start.
#ifndef QLORAD_CORE_SERVICE_ADAPTER_CATALOG_H_
#define QLORAD_CORE_SERVICE_ADAPTER_CATALOG_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/serve/serving_engine.h"
#include "core/service/drift_tracker.h"
#include "core/service/job_queue.h"
#include "core/service/service_core.h"
#include "core/store/adapter_store.h"
#include "core/store/shared_store.h"
#include "core/tokenizer/prompt_format.h"

namespace qlorad::service {

using store::AdapterRow;

class AdapterCatalog {
 public:
  // Every pointer must outlive the catalog. `import_root` is canonical ("" = imports off).
  AdapterCatalog(const CoreOptions& options, store::SharedStore* db, store::AdapterStore* store,
                 serve::ServingEngine* engine, DriftTracker* drift, std::string import_root)
      : options_(options), db_(db), store_(store), engine_(engine), drift_(drift), import_root_(std::move(import_root)) {}

  // An adapter id or alias -> the adapter id (NOT_FOUND naming the reference).
  absl::StatusOr<std::string> Resolve(const std::string& ref);
  absl::StatusOr<AdapterInfo> Describe(const AdapterRow& row) ABSL_LOCKS_EXCLUDED(unloadable_mu_);
  absl::StatusOr<AdapterInfo> Get(const std::string& ref);
  absl::StatusOr<std::vector<AdapterInfo>> List(const Page& page, std::string* next_page_token);
  absl::StatusOr<AdapterRow> Row(const std::string& id) { return store_->Get(id); }
  // The prompt format recorded in the adapter's run record (nullopt: none recorded,
  // or the base model; the engine's format applies).
  absl::StatusOr<std::optional<tokenizer::PromptFormat>> TrainedPromptFormat(const std::string& adapter_id);
  // A finished job's adapter: takes the next version and registers it (one transaction).
  absl::StatusOr<std::string> RegisterTrained(const TrainedAdapter& adapter) ABSL_LOCKS_EXCLUDED(commit_mu_);

  // residency.cc
  // Loads the adapter on the engine (idempotent unless `pin`); `pin` keeps it on the device.
  absl::Status EngineLoad(const std::string& id, const std::string& dir, bool allow_base_mismatch, bool pin = false);
  absl::StatusOr<AdapterInfo> Load(const std::string& ref, bool allow_base_mismatch, bool pin, const std::string& actor)
      ABSL_LOCKS_EXCLUDED(unloadable_mu_);
  absl::StatusOr<AdapterInfo> Unload(const std::string& ref, const std::string& actor);
  // Restart recovery: loads every adapter stored as loaded; one that fails is marked
  // unloaded (audited "reload_failed" with the reason) and the daemon goes on. Every other
  // adapter's files are checked too (the safetensors header against the file, nothing
  // loaded). Each failure is remembered as the adapter's load_error (Describe, Unloadable)
  // until a successful Load; nothing else is changed.
  absl::Status Reload() ABSL_LOCKS_EXCLUDED(unloadable_mu_);
  std::vector<UnloadableAdapter> Unloadable() ABSL_LOCKS_EXCLUDED(unloadable_mu_);
  int64_t unloads() const { return unloads_.load(); }

  // decide.cc / deploy.cc
  absl::StatusOr<AdapterInfo> Decide(const std::string& ref, bool approve, const DecisionInput& input);
  // `guard`: what the store checks and records in the promote's transaction (the gate).
  absl::StatusOr<AdapterInfo> Promote(const std::string& ref, const std::string& alias, const std::string& actor,
                                      const store::PromoteGuard& guard = {});
  absl::Status Delete(const std::string& ref, const std::string& actor);

  // adapter_upload.cc / adapter_export.cc
  absl::StatusOr<AdapterInfo> Import(const std::string& name, const std::string& path, bool allow_base_mismatch,
                                     const std::string& actor);
  absl::StatusOr<std::string> BeginUpload(const AdapterUpload& upload);
  absl::StatusOr<AdapterInfo> Upload(const AdapterUpload& upload);
  absl::StatusOr<AdapterExport> Export(const AdapterExportRequest& request);

 private:
  void WatchDrift(const std::string& adapter_id, const std::string& dir);
  // Validates the adapter staged in `staged` (under upload_dir()) against the resident
  // base, moves it to adapters/<name>/<version> and registers it with `details`; removes
  // `staged` on failure. Validation errors call the adapter `label`.
  absl::StatusOr<AdapterInfo> CommitStagedAdapter(const std::string& name, const std::string& staged,
                                                  const std::string& label, bool allow_base_mismatch,
                                                  const std::string& actor, nlohmann::json details)
      ABSL_LOCKS_EXCLUDED(commit_mu_);
  // INVALID_ARGUMENT / RESOURCE_EXHAUSTED naming the header field that is wrong.
  absl::Status CheckAdapterUploadHeader(const AdapterUpload& upload) const;
  // A fresh empty directory under upload_dir() named <prefix>-<unique>.
  absl::StatusOr<std::string> NewStagingDir(const std::string& prefix);
  std::string upload_dir() const { return options_.state_dir + "/uploads"; }

  const CoreOptions& options_;
  store::SharedStore* db_;
  store::AdapterStore* store_;
  serve::ServingEngine* engine_;
  DriftTracker* drift_;
  const std::string import_root_;
  absl::Mutex commit_mu_;  // versions are taken and registered one at a time (jobs, imports, uploads)
  std::atomic<int64_t> unloads_{0};
  absl::Mutex unloadable_mu_;
  std::map<std::string, std::string> unloadable_ ABSL_GUARDED_BY(unloadable_mu_);  // id -> load_error
};

}  // namespace qlorad::service

#endif  // QLORAD_CORE_SERVICE_ADAPTER_CATALOG_H_

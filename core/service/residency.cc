// AdapterCatalog: engine residency — load / unload on the serving engine, mirrored in the
// stored loaded flag (the wish the engine is rebuilt from on start: Reload).
#include "absl/strings/str_cat.h"
#include "core/adapter/peft_config.h"
#include "core/model/safetensors.h"
#include "core/service/adapter_catalog.h"
#include "core/service/audit.h"
#include "core/util/status_macros.h"

namespace qlorad::service {
namespace {

// The cheap part of loading an adapter, without touching the engine: adapter_config.json
// parses and the weights file's safetensors header is consistent with the file (a
// truncated or overwritten file fails here, naming it).
absl::Status CheckAdapterFiles(const std::string& dir) {
  QLORAD_RETURN_IF_ERROR(ReadPeftConfig(dir).status());
  QLORAD_ASSIGN_OR_RETURN(std::string weights, PeftWeightsPath(dir));
  return SafetensorsFile::Open(weights).status();
}

}  // namespace

absl::Status AdapterCatalog::EngineLoad(const std::string& id, const std::string& dir, bool allow_base_mismatch,
                                        bool pin) {
  if (engine_->IsLoaded(id) && !pin) return absl::OkStatus();
  return engine_->LoadAdapter(id, dir, allow_base_mismatch, pin);
}

void AdapterCatalog::WatchDrift(const std::string& adapter_id, const std::string& dir) {
  absl::Status watched = drift_->Watch(adapter_id, dir + "/drift_profile.json");
  if (!watched.ok())  // serving goes on without drift monitoring for this adapter; say so in the audit log
    (void)Audit(*db_, "system", "drift_profile_unusable", "adapter:" + adapter_id, {{"error", watched.ToString()}});
}

absl::StatusOr<AdapterInfo> AdapterCatalog::Load(const std::string& ref, bool allow_base_mismatch, bool pin,
                                                 const std::string& actor) {
  QLORAD_ASSIGN_OR_RETURN(std::string id, Resolve(ref));
  QLORAD_ASSIGN_OR_RETURN(AdapterRow row, store_->Get(id));
  QLORAD_RETURN_IF_ERROR(EngineLoad(id, row.path, allow_base_mismatch, pin));
  {
    absl::MutexLock lock(&unloadable_mu_);
    unloadable_.erase(id);
  }
  WatchDrift(id, row.path);
  QLORAD_RETURN_IF_ERROR(store_->SetLoaded(id, true, actor.empty() ? "system" : actor, "load",
                                           {{"allow_base_mismatch", allow_base_mismatch}, {"pin", pin}}));
  row.loaded = true;
  return Describe(row);
}

absl::StatusOr<AdapterInfo> AdapterCatalog::Unload(const std::string& ref, const std::string& actor) {
  QLORAD_ASSIGN_OR_RETURN(std::string id, Resolve(ref));
  QLORAD_ASSIGN_OR_RETURN(AdapterRow row, store_->Get(id));
  QLORAD_RETURN_IF_ERROR(engine_->UnloadAdapter(id));  // in-flight requests keep their pinned copy
  ++unloads_;
  drift_->Unwatch(id);
  QLORAD_RETURN_IF_ERROR(store_->SetLoaded(id, false, actor.empty() ? "system" : actor, "unload", nlohmann::json::object()));
  row.loaded = false;
  return Describe(row);
}

absl::Status AdapterCatalog::Reload() {
  std::string after;
  while (true) {
    QLORAD_ASSIGN_OR_RETURN(std::vector<AdapterRow> rows, store_->List(after, 500));
    if (rows.empty()) return absl::OkStatus();
    for (const AdapterRow& row : rows) {
      // One bad adapter must not keep the daemon down: record why, and go on.
      absl::Status usable = row.loaded ? EngineLoad(row.id, row.path, /*allow_base_mismatch=*/false)
                                       : CheckAdapterFiles(row.path);
      if (usable.ok()) {
        if (row.loaded) WatchDrift(row.id, row.path);
        continue;
      }
      {
        absl::MutexLock lock(&unloadable_mu_);
        unloadable_[row.id] = usable.ToString();
      }
      if (row.loaded)
        QLORAD_RETURN_IF_ERROR(store_->SetLoaded(row.id, false, "system", "reload_failed", {{"error", usable.ToString()}}));
    }
    after = rows.back().id;
  }
}

std::vector<UnloadableAdapter> AdapterCatalog::Unloadable() {
  absl::MutexLock lock(&unloadable_mu_);
  std::vector<UnloadableAdapter> out;
  for (const auto& [id, reason] : unloadable_) out.push_back({id, reason});
  return out;
}

}  // namespace qlorad::service

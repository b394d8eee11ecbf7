// ServiceCore: adapters — listing, residency (load/unload on the serving engine),
// approval decisions and promotion (deploy + alias move) through the lifecycle rules.
#include <chrono>

#include "absl/strings/str_cat.h"
#include "core/service/core_impl.h"
#include "core/service/paging.h"
#include "core/store/adapter_lifecycle.h"
#include "core/util/status_macros.h"

namespace qlorad::service {

absl::Status ServiceCoreImpl::EngineLoad(const std::string& id, const std::string& dir, bool allow_base_mismatch,
                                        bool pin) {
  if (engine_->IsLoaded(id) && !pin) return absl::OkStatus();
  return engine_->LoadAdapter(id, dir, allow_base_mismatch, pin);
}

CoreStats ServiceCoreImpl::Stats() {
  CoreStats out;
  {
    std::lock_guard<std::mutex> lock(stats_mu_);
    out.adapter_unloads = stats_.adapter_unloads;
  }
  serve::EngineStats engine = engine_->DrainStats();
  out.adapter_loads = engine.adapters.loads;
  out.adapter_load_failures = engine.adapters.load_failures;
  out.adapter_evictions = engine.adapters.evictions;
  out.adapter_load_seconds = std::move(engine.adapters.load_seconds);
  out.requests_running = engine.batch.running;
  out.requests_waiting = engine.batch.waiting;
  out.requests_in_flight = engine.in_flight;
  out.kv_blocks_used = engine.batch.kv_blocks_used;
  out.kv_blocks_reserved = engine.batch.kv_blocks_reserved;
  out.kv_blocks_total = engine.batch.kv_blocks_total;
  out.engine_bytes["kv_cache"] = (engine.batch.kv_blocks_total + 1) * engine.batch.kv_block_bytes;
  out.engine_bytes["weights"] = engine.weights_bytes;
  out.engine_bytes["adapters"] = 0;
  out.device = engine.device;
  if (engine.device_memory) {
    out.device_memory_used = engine.device_memory->used_bytes;
    out.device_memory_total = engine.device_memory->total_bytes;
  }
  out.batch_sizes = std::move(engine.batch.batch_rows);
  for (const char* tier : {"device", "host", "disk"}) out.adapters_by_tier[tier] = 0;
  for (const serve::AdapterResidency& r : engine.residency) {
    ++out.adapters_by_tier[serve::AdapterTierName(r.tier)];
    if (r.tier == serve::AdapterTier::kDevice) out.engine_bytes["adapters"] += r.bytes;
  }
  auto registered = store_->CountAdapters();
  out.adapters_registered = registered.ok() ? *registered : 0;
  for (const char* status : {"succeeded", "failed", "cancelled"}) {
    auto count = store_->CountJobsWithStatus(status);
    out.jobs_ended[status] = count.ok() ? *count : 0;
  }
  return out;
}

absl::StatusOr<std::vector<AdapterInfo>> ServiceCoreImpl::ListAdapters(const Page& page, std::string* next_page_token) {
  QLORAD_ASSIGN_OR_RETURN(int64_t size, ValidatePageSize(page.page_size));
  QLORAD_ASSIGN_OR_RETURN(std::vector<AdapterRow> rows, store_->ListAdapters(page.page_token, size + 1));
  *next_page_token = TrimPage(rows, size) ? rows.back().id : "";
  std::vector<AdapterInfo> out;
  for (const AdapterRow& row : rows) {
    QLORAD_ASSIGN_OR_RETURN(AdapterInfo info, DescribeAdapter(row));
    out.push_back(std::move(info));
  }
  return out;
}

absl::StatusOr<AdapterInfo> ServiceCoreImpl::GetAdapter(const std::string& ref) {
  QLORAD_ASSIGN_OR_RETURN(std::string id, ResolveAdapter(ref));
  QLORAD_ASSIGN_OR_RETURN(AdapterRow row, store_->GetAdapter(id));
  return DescribeAdapter(row);
}

absl::StatusOr<AdapterInfo> ServiceCoreImpl::LoadAdapter(const std::string& ref, bool allow_base_mismatch, bool pin,
                                                         const std::string& actor) {
  QLORAD_ASSIGN_OR_RETURN(std::string id, ResolveAdapter(ref));
  QLORAD_ASSIGN_OR_RETURN(AdapterRow row, store_->GetAdapter(id));
  QLORAD_RETURN_IF_ERROR(EngineLoad(id, row.path, allow_base_mismatch, pin));
  WatchDrift(id, row.path);
  QLORAD_RETURN_IF_ERROR(store_->SetAdapterLoaded(id, true));
  QLORAD_RETURN_IF_ERROR(Audit(actor, "load", "adapter:" + id, {{"allow_base_mismatch", allow_base_mismatch}, {"pin", pin}}));
  row.loaded = true;
  return DescribeAdapter(row);
}

absl::StatusOr<AdapterInfo> ServiceCoreImpl::UnloadAdapter(const std::string& ref, const std::string& actor) {
  QLORAD_ASSIGN_OR_RETURN(std::string id, ResolveAdapter(ref));
  QLORAD_ASSIGN_OR_RETURN(AdapterRow row, store_->GetAdapter(id));
  QLORAD_RETURN_IF_ERROR(engine_->UnloadAdapter(id));  // in-flight requests keep their pinned copy
  {
    std::lock_guard<std::mutex> lock(stats_mu_);
    ++stats_.adapter_unloads;
  }
  drift_->Unwatch(id);
  QLORAD_RETURN_IF_ERROR(store_->SetAdapterLoaded(id, false));
  QLORAD_RETURN_IF_ERROR(Audit(actor, "unload", "adapter:" + id, nlohmann::json::object()));
  row.loaded = false;
  return DescribeAdapter(row);
}

absl::StatusOr<AdapterInfo> ServiceCoreImpl::Decide(const std::string& ref, bool approve, const DecisionInput& input) {
  QLORAD_ASSIGN_OR_RETURN(std::string id, ResolveAdapter(ref));
  store::Decision decision;
  decision.actor = input.actor;
  decision.note = input.note;
  decision.documentation_ref = input.documentation_ref;
  auto risk = store::ParseRiskClass(input.risk_class.empty() ? "minimal" : input.risk_class);
  if (!risk.ok()) return absl::InvalidArgumentError(absl::StrCat("risk_class: ", risk.status().message()));
  decision.risk_class = *risk;
  QLORAD_RETURN_IF_ERROR(store_->WithStore([&](store::Store& s) {
    store::AdapterLifecycle lifecycle(&s);
    return approve ? lifecycle.Approve(id, decision) : lifecycle.Reject(id, decision);
  }));
  return GetAdapter(id);
}

absl::StatusOr<AdapterInfo> ServiceCoreImpl::Promote(const std::string& ref, const std::string& alias,
                                                     const std::string& actor) {
  if (alias.empty() || alias.find('@') != std::string::npos)
    return absl::InvalidArgumentError("alias: must be non-empty and contain no '@' (e.g. sentiment:prod)");
  QLORAD_ASSIGN_OR_RETURN(std::string id, ResolveAdapter(ref));
  QLORAD_ASSIGN_OR_RETURN(AdapterRow row, store_->GetAdapter(id));
  QLORAD_ASSIGN_OR_RETURN(AdapterInfo before, DescribeAdapter(row));
  QLORAD_ASSIGN_OR_RETURN(store::AdapterState state, store::ParseAdapterState(before.state));
  store::DeploymentPolicy policy;
  policy.require_approval = options_.require_approval;
  if (state != store::AdapterState::kDeployed)  // refused before anything changes
    QLORAD_RETURN_IF_ERROR(store::CheckTransition(id, state, store::AdapterState::kDeployed, policy));
  // Then load: a refused load changes no state; requests on the alias never find it absent.
  QLORAD_RETURN_IF_ERROR(EngineLoad(id, row.path, false));
  WatchDrift(id, row.path);
  if (state != store::AdapterState::kDeployed) {
    QLORAD_RETURN_IF_ERROR(store_->WithStore([&](store::Store& s) {
      store::AdapterLifecycle lifecycle(&s);
      return lifecycle.Deploy(id, actor.empty() ? "system" : actor, alias, policy);
    }));
  }
  QLORAD_RETURN_IF_ERROR(store_->SetAdapterLoaded(id, true));
  QLORAD_RETURN_IF_ERROR(store_->SetAlias(alias, id, Now()));
  QLORAD_RETURN_IF_ERROR(Audit(actor, "promote", "adapter:" + id, {{"alias", alias}}));
  return GetAdapter(id);
}

absl::Status ServiceCoreImpl::DeleteAdapter(const std::string& ref, const std::string& actor) {
  QLORAD_ASSIGN_OR_RETURN(std::string id, ResolveAdapter(ref));
  QLORAD_ASSIGN_OR_RETURN(AdapterRow row, store_->GetAdapter(id));
  QLORAD_RETURN_IF_ERROR(store_->DeleteAdapter(id));  // refused while an alias points at it
  (void)engine_->UnloadAdapter(id);
  drift_->Unwatch(id);
  return Audit(actor, "delete", "adapter:" + id, {{"path", row.path}});
}

}  // namespace qlorad::service

#include "core/service/core_impl.h"

#include <chrono>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/model/device.h"
#include "core/store/adapter_lifecycle.h"
#include "core/store/audit_log.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"
#include "core/util/time_util.h"

namespace qlorad::service {

absl::StatusOr<std::unique_ptr<ServiceCore>> ServiceCore::Start(const CoreOptions& options) {
  auto core = std::make_unique<ServiceCoreImpl>(options);
  QLORAD_RETURN_IF_ERROR(core->Init());
  return std::unique_ptr<ServiceCore>(std::move(core));
}

absl::Status ServiceCoreImpl::Init() {
  if (options_.state_dir.empty()) return absl::InvalidArgumentError("state_dir: must be set");
  if (options_.base_model_dir.empty()) return absl::InvalidArgumentError("base_model_dir: must be set");
  if (options_.base_model_name.empty())
    options_.base_model_name = std::filesystem::path(options_.base_model_dir).lexically_normal().filename().string();
  if (options_.base_model_name.empty())  // a trailing slash
    options_.base_model_name = std::filesystem::path(options_.base_model_dir).parent_path().filename().string();
  for (const char* sub : {"", "/uploads", "/jobs", "/evaluations"})
    QLORAD_RETURN_IF_ERROR(EnsureDirectory(options_.state_dir + sub));
  std::error_code ec;
  if (!options_.import_root.empty()) {
    import_root_ = std::filesystem::canonical(options_.import_root, ec).string();
    if (ec || !std::filesystem::is_directory(import_root_))
      return absl::InvalidArgumentError(absl::StrCat("import_root: '", options_.import_root, "' is not a directory (--import-root)"));
  }
  for (const auto& entry : std::filesystem::directory_iterator(upload_dir(), ec))
    std::filesystem::remove_all(entry.path(), ec);  // uploads interrupted by a stop
  QLORAD_ASSIGN_OR_RETURN(store_, DaemonStore::Open(options_.state_dir + "/qlorad.db"));
  QLORAD_ASSIGN_OR_RETURN(datasets_, data::DatasetStore::Open(options_.state_dir + "/datasets"));
  serve::EngineOptions engine;
  engine.model_dir = options_.base_model_dir;
  engine.device = options_.device;
  engine.quantize = options_.serve_quantize;
  engine.max_prompt_tokens = options_.max_prompt_tokens;
  engine.max_new_tokens = options_.max_new_tokens;
  engine.max_waiting = options_.max_waiting_requests;
  engine.kv_cache_bytes = options_.kv_cache_mb << 20;
  engine.max_running = options_.max_batch;
  engine.prefill_chunk_tokens = options_.prefill_chunk_tokens;
  engine.max_device_adapters = options_.max_resident_adapters;
  QLORAD_ASSIGN_OR_RETURN(engine_, serve::ServingEngine::Create(engine));
  devices_ = AvailableDevices();
  monitor::DriftWindowOptions window;
  window.max_prompts = static_cast<size_t>(std::max<int64_t>(1, options_.drift_window_prompts));
  if (options_.drift_window_seconds > 0) window.max_age = absl::Seconds(options_.drift_window_seconds);
  drift_ = std::make_unique<DriftTracker>(engine_.get(), window);
  QLORAD_RETURN_IF_ERROR(RecoverJobs());
  QLORAD_RETURN_IF_ERROR(ReloadAdapters());
  for (int i = 0; i < std::max(1, options_.training_workers); ++i) workers_.emplace_back([this] { WorkerLoop(); });
  return absl::OkStatus();
}

void ServiceCoreImpl::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(jobs_mu_);
    if (stopping_.exchange(true)) return;
  }
  jobs_cv_.notify_all();
  events_cv_.notify_all();
  for (auto& worker : workers_) worker.join();
  workers_.clear();
}

std::string ServiceCoreImpl::Now() { return NowUtcRfc3339(TimePrecision::kMilliseconds); }

std::string ServiceCoreImpl::NewId(const std::string& prefix) {
  return absl::StrFormat("%s-%s-%04x", prefix, absl::FormatTime("%Y%m%d%H%M%S", absl::Now(), absl::UTCTimeZone()),
                         static_cast<unsigned>((absl::ToUnixMicros(absl::Now()) + id_counter_++) & 0xffff));
}

absl::Status ServiceCoreImpl::Audit(const std::string& actor, const std::string& action, const std::string& subject,
                                    const nlohmann::json& details) {
  return store_->WithStore([&](store::Store& s) -> absl::Status {
    store::AuditLog log(&s);
    store::AuditEntry entry;
    entry.at = Now();
    entry.actor = actor.empty() ? "system" : actor;
    entry.entity_type = subject.substr(0, subject.find(':'));
    entry.entity_id = subject.substr(subject.find(':') + 1);
    entry.action = action;
    entry.details = details;
    return log.Append(entry).status();
  });
}

absl::StatusOr<std::string> ServiceCoreImpl::ResolveAdapter(const std::string& ref) {
  if (ref.empty()) return absl::InvalidArgumentError("adapter: must name an adapter id (name@version) or an alias");
  if (ref.find('@') != std::string::npos) {
    QLORAD_RETURN_IF_ERROR(store_->GetAdapter(ref).status());
    return ref;
  }
  QLORAD_ASSIGN_OR_RETURN(std::optional<std::string> target, store_->ResolveAlias(ref));
  if (!target) return absl::NotFoundError(absl::StrCat("adapter '", ref, "' is neither an adapter id (name@version) nor an alias"));
  return *target;
}

absl::StatusOr<AdapterInfo> ServiceCoreImpl::DescribeAdapter(const AdapterRow& row) {
  const std::optional<serve::AdapterResidency> residency = engine_->ResidencyOf(row.id);
  AdapterInfo info{row.id, row.name, row.job_id, row.path, row.base_fingerprint, row.dataset_id, row.created_at, "", "",
                   row.version, residency.has_value(), {}};
  QLORAD_ASSIGN_OR_RETURN(info.aliases, store_->AliasesOf(row.id));
  if (residency) {
    info.residency = serve::AdapterTierName(residency->tier);
    info.pinned = residency->pinned;
    info.placements = residency->loads;
    info.evictions = residency->evictions;
  }
  QLORAD_RETURN_IF_ERROR(store_->WithStore([&](store::Store& s) -> absl::Status {
    store::AdapterLifecycle lifecycle(&s);
    QLORAD_ASSIGN_OR_RETURN(store::AdapterVersion version, lifecycle.Get(row.id));
    info.state = store::AdapterStateName(version.state);
    info.evaluation_id = version.evaluation_id;
    return absl::OkStatus();
  }));
  return info;
}

void ServiceCoreImpl::WatchDrift(const std::string& adapter_id, const std::string& dir) {
  absl::Status watched = drift_->Watch(adapter_id, dir + "/drift_profile.json");
  if (!watched.ok())  // serving goes on without drift monitoring for this adapter; say so in the audit log
    (void)Audit("system", "drift_profile_unusable", "adapter:" + adapter_id, {{"error", watched.ToString()}});
}

std::vector<DriftInfo> ServiceCoreImpl::DriftReports() {
  std::vector<DriftInfo> out;
  const auto start = std::chrono::steady_clock::now();
  for (const auto& [adapter, r] : drift_->Reports()) {
    out.push_back({adapter, r.window_size, r.window_tokens, r.psi_length, r.js_tokens, r.rare_token_rate_delta,
                   r.has_embedding_distance, r.embedding_distance, static_cast<int>(r.band), 0});
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (auto& info : out) info.compute_seconds = seconds / static_cast<double>(out.size());
  return out;
}

absl::Status ServiceCoreImpl::RecoverJobs() {
  QLORAD_ASSIGN_OR_RETURN(std::vector<JobRow> interrupted, store_->JobsWithStatus("running"));
  for (JobRow& job : interrupted) {
    job.status = "queued";
    QLORAD_RETURN_IF_ERROR(store_->UpdateJob(job));
    QLORAD_RETURN_IF_ERROR(AppendEvent(job.id, {{"type", "status"}, {"status", "queued"},
                                                {"message", "daemon restarted: the job resumes from its last checkpoint"}}));
  }
  return absl::OkStatus();
}

absl::Status ServiceCoreImpl::ReloadAdapters() {
  std::string after;
  while (true) {
    QLORAD_ASSIGN_OR_RETURN(std::vector<AdapterRow> rows, store_->ListAdapters(after, 500));
    if (rows.empty()) return absl::OkStatus();
    for (const AdapterRow& row : rows) {
      if (!row.loaded) continue;
      absl::Status loaded = EngineLoad(row.id, row.path, /*allow_base_mismatch=*/false);
      if (loaded.ok()) WatchDrift(row.id, row.path);
      if (!loaded.ok()) {  // one bad adapter must not keep the daemon down: record and go on
        QLORAD_RETURN_IF_ERROR(store_->SetAdapterLoaded(row.id, false));
        QLORAD_RETURN_IF_ERROR(Audit("system", "reload_failed", "adapter:" + row.id, {{"error", loaded.ToString()}}));
      }
    }
    after = rows.back().id;
  }
}

}  // namespace qlorad::service

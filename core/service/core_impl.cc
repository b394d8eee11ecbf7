// ServiceCoreImpl: start (state directory, store, engine, parts), recovery and drift
// reports. Every other call is forwarded to the part that owns it (core_impl.h).
#include "core/service/core_impl.h"

#include <chrono>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "core/model/device.h"
#include "core/service/drift_profile.h"
#include "core/service/ids.h"
#include "core/store/daemon_migrations.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"

namespace qlorad::service {

absl::StatusOr<std::unique_ptr<ServiceCore>> ServiceCore::Start(const CoreOptions& options) {
  auto core = std::make_unique<ServiceCoreImpl>(options);
  QLORAD_RETURN_IF_ERROR(core->Init());
  return std::unique_ptr<ServiceCore>(std::move(core));
}

absl::Status ServiceCoreImpl::OpenEngine() {
  serve::EngineOptions engine;
  engine.model_dir = options_.base_model_dir;
  engine.device = options_.device;
  engine.quantize = options_.serve_quantize;
  engine.adapter_factors = options_.adapter_factors;
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
  return absl::OkStatus();
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
  std::string import_root;
  if (!options_.import_root.empty()) {
    import_root = std::filesystem::canonical(options_.import_root, ec).string();
    if (ec || !std::filesystem::is_directory(import_root))
      return absl::InvalidArgumentError(absl::StrCat("import_root: '", options_.import_root, "' is not a directory (--import-root)"));
  }
  if (!(options_.promotion_margin >= 0))
    return absl::InvalidArgumentError(absl::StrCat("promotion_margin: ", options_.promotion_margin,
                                                   " must be >= 0 (--promotion-margin, e.g. 0.05)"));
  for (const auto& entry : std::filesystem::directory_iterator(upload_dir(), ec))
    std::filesystem::remove_all(entry.path(), ec);  // uploads interrupted by a stop
  const store::BusyPolicy busy{static_cast<int>(options_.db_busy_timeout_ms), static_cast<int>(options_.db_busy_attempts)};
  QLORAD_ASSIGN_OR_RETURN(db_, store::SharedStore::Open(options_.state_dir + "/qlorad.db", store::DaemonDatabaseMigrations(),
                                                        busy));
  store_ = std::make_unique<DaemonStore>(db_.get());
  adapter_store_ = std::make_unique<store::AdapterStore>(db_.get());
  QLORAD_ASSIGN_OR_RETURN(datasets_, data::DatasetStore::Open(options_.state_dir + "/datasets"));
  QLORAD_RETURN_IF_ERROR(OpenEngine());
  scorer_ = std::make_unique<EngineScorer>(engine_.get());
  evaluations_ = std::make_unique<eval::EvaluationRunner>(datasets_.get(), db_.get(), scorer_.get(),
                                                          options_.state_dir + "/evaluations");
  reviews_ = std::make_unique<InteractiveReview>(db_.get(), [] { return Now(); });
  adapters_ = std::make_unique<AdapterCatalog>(options_, db_.get(), adapter_store_.get(), engine_.get(), drift_.get(),
                                               import_root);
  gate_ = std::make_unique<PromotionGate>(db_.get(), adapter_store_.get(), options_.promotion_margin);
  jobs_ = std::make_unique<JobQueue>(
      options_, store_.get(), db_.get(), datasets_.get(),
      [this](const std::string& dataset_id, const std::string& dir) {
        return BuildDriftProfile(*datasets_, *engine_, *drift_, dataset_id, dir);
      },
      [this](const TrainedAdapter& adapter) { return adapters_->RegisterTrained(adapter); },
      [this](const std::string& job_id) { return adapter_store_->IdOfJob(job_id); });
  QLORAD_RETURN_IF_ERROR(jobs_->Recover());
  QLORAD_RETURN_IF_ERROR(adapters_->Reload());  // engine residency: derived from the stored loaded flags
  jobs_->StartWorkers(options_.training_workers);
  return absl::OkStatus();
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

}  // namespace qlorad::service

// The ServiceCore implementation (private to core/service). Split by concern:
// core_impl.cc (start, recovery, shutdown, shared helpers), datasets.cc, jobs.cc (queue,
// workers, the training run), adapters.cc, inference.cc (generation, classification,
// evaluation).
#ifndef QLORAD_CORE_SERVICE_CORE_IMPL_H_
#define QLORAD_CORE_SERVICE_CORE_IMPL_H_

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/data/dataset_store.h"
#include "core/serve/serving_engine.h"
#include "core/service/daemon_store.h"
#include "core/service/drift_tracker.h"
#include "core/service/service_core.h"

namespace qlorad::service {

// INVALID_ARGUMENT naming adapter_name unless it matches [a-z0-9][a-z0-9._-]{0,63}.
absl::Status ValidateAdapterName(const std::string& name);

class ServiceCoreImpl : public ServiceCore {
 public:
  explicit ServiceCoreImpl(const CoreOptions& options) : options_(options) {}
  ~ServiceCoreImpl() override { Shutdown(); }
  absl::Status Init();

  void Shutdown() override;

  absl::StatusOr<DatasetInfo> CreateDataset(const DatasetUpload& upload) override;
  absl::StatusOr<DatasetInfo> GetDataset(const std::string& id) override;
  absl::StatusOr<std::vector<DatasetInfo>> ListDatasets(const Page& page, std::string* next_page_token) override;
  absl::Status DeleteDataset(const std::string& id, const std::string& actor) override;

  absl::StatusOr<JobInfo> SubmitJob(const JobSpec& spec, const std::string& actor) override;
  absl::StatusOr<JobInfo> GetJob(const std::string& id) override;
  absl::StatusOr<std::vector<JobInfo>> ListJobs(const Page& page, std::string* next_page_token) override;
  absl::StatusOr<JobInfo> CancelJob(const std::string& id, const std::string& actor) override;
  absl::StatusOr<std::vector<JobEvent>> WaitJobEvents(const std::string& id, int64_t after_seq, int64_t timeout_ms,
                                                      bool* terminal) override;

  absl::StatusOr<std::vector<AdapterInfo>> ListAdapters(const Page& page, std::string* next_page_token) override;
  absl::StatusOr<AdapterInfo> GetAdapter(const std::string& ref) override;
  absl::StatusOr<AdapterInfo> ImportAdapter(const std::string& name, const std::string& path, bool allow_base_mismatch,
                                            const std::string& actor) override;
  absl::StatusOr<std::string> BeginAdapterUpload(const AdapterUpload& upload) override;
  absl::StatusOr<AdapterInfo> UploadAdapter(const AdapterUpload& upload) override;
  absl::StatusOr<AdapterExport> ExportAdapter(const AdapterExportRequest& request) override;
  absl::StatusOr<AdapterInfo> LoadAdapter(const std::string& ref, bool allow_base_mismatch, bool pin,
                                          const std::string& actor) override;
  absl::StatusOr<AdapterInfo> UnloadAdapter(const std::string& ref, const std::string& actor) override;
  absl::StatusOr<AdapterInfo> Promote(const std::string& ref, const std::string& alias, const std::string& actor) override;
  absl::StatusOr<AdapterInfo> Decide(const std::string& ref, bool approve, const DecisionInput& decision) override;
  absl::Status DeleteAdapter(const std::string& ref, const std::string& actor) override;

  absl::StatusOr<GenerateOutput> Generate(const GenerateInput& input, const TextPieceCallback& on_piece) override;
  absl::StatusOr<ClassifyOutput> Classify(const std::string& adapter, const std::string& text,
                                          const std::vector<std::string>& labels) override;
  absl::StatusOr<EvaluationInfo> Evaluate(const EvaluationInput& input) override;
  absl::StatusOr<EvaluationInfo> GetEvaluation(const std::string& id) override;
  absl::StatusOr<ReviewExport> ExportReviewSample(const ReviewExportInput& input) override;
  absl::StatusOr<nlohmann::json> ImportReviews(const std::string& evaluation_id, const std::vector<ReviewerFile>& files,
                                               const std::string& actor) override;
  std::vector<std::string> devices() const override { return devices_; }
  std::vector<DriftInfo> DriftReports() override;
  void FlushDrift() override { drift_->Flush(); }
  CoreStats Stats() override;

  const CoreOptions& options() const override { return options_; }
  std::string base_fingerprint() const override { return engine_->fingerprint(); }
  std::string upload_dir() const override { return options_.state_dir + "/uploads"; }

 private:
  // Shared helpers (core_impl.cc).
  static std::string Now();
  std::string NewId(const std::string& prefix);
  absl::Status Audit(const std::string& actor, const std::string& action, const std::string& subject,
                     const nlohmann::json& details);
  // An adapter id or alias -> the adapter id (NOT_FOUND naming the reference).
  absl::StatusOr<std::string> ResolveAdapter(const std::string& ref);
  absl::StatusOr<AdapterInfo> DescribeAdapter(const AdapterRow& row);
  // The prompt format recorded in the adapter's run record (nullopt: none recorded,
  // or the base model; the engine's format applies).
  absl::StatusOr<std::optional<tokenizer::PromptFormat>> TrainedPromptFormat(const std::string& adapter_id);
  absl::Status RecoverJobs();
  // The stored record of `id` (NOT_FOUND naming it).
  absl::StatusOr<nlohmann::json> StoredRecordJson(const std::string& id);
  absl::Status ReloadAdapters();
  // Builds the drift reference profile of a finished job's training prompts into `dir`.
  absl::Status BuildDriftProfile(const std::string& dataset_id, const std::string& dir);
  void WatchDrift(const std::string& adapter_id, const std::string& dir);

  // Adapter import and upload (adapter_upload.cc). Validates the adapter staged in `staged`
  // (under upload_dir()) against the resident base, moves it to adapters/<name>/<version>
  // and registers it with `details` in the lifecycle record; removes `staged` on failure.
  // Validation errors call the adapter `label` (the import path, "upload:<name>").
  absl::StatusOr<AdapterInfo> CommitStagedAdapter(const std::string& name, const std::string& staged,
                                                  const std::string& label, bool allow_base_mismatch,
                                                  const std::string& actor, nlohmann::json details);
  // INVALID_ARGUMENT / RESOURCE_EXHAUSTED naming the header field that is wrong.
  absl::Status CheckAdapterUploadHeader(const AdapterUpload& upload) const;
  // A fresh empty directory under upload_dir() named <prefix>-<unique>.
  absl::StatusOr<std::string> NewStagingDir(const std::string& prefix);

  // Jobs (jobs.cc).
  void WorkerLoop();
  void RunJob(JobRow job);
  absl::Status AppendEvent(const std::string& job_id, nlohmann::json event);
  absl::Status FinishJob(JobRow& job, const std::string& status, const std::string& error);
  JobInfo ToJobInfo(const JobRow& row) const;

  CoreOptions options_;
  std::vector<std::string> devices_;
  std::unique_ptr<DaemonStore> store_;
  std::unique_ptr<data::DatasetStore> datasets_;
  std::unique_ptr<serve::ServingEngine> engine_;
  std::unique_ptr<DriftTracker> drift_;  // after engine_: destroyed first (its worker uses the engine)

  std::mutex jobs_mu_;
  std::condition_variable jobs_cv_;    // new queued job, or stopping
  std::condition_variable events_cv_;  // a job event was appended
  std::set<std::string> cancel_requested_;
  std::set<std::string> running_;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> id_counter_{0};
  std::vector<std::thread> workers_;
  std::mutex eval_mu_;  // evaluations run one at a time
  std::mutex commit_mu_;  // imports and uploads take their version and register one at a time
  std::string import_root_;  // canonical CoreOptions::import_root ("" = imports off)
  // Loads the adapter on the engine (idempotent), counting loads, failures and durations.
  // Registers `id` on the engine (prefetched to the device); `pin` keeps it there.
  absl::Status EngineLoad(const std::string& id, const std::string& dir, bool allow_base_mismatch, bool pin = false);
  std::mutex stats_mu_;
  CoreStats stats_;
};

}  // namespace qlorad::service

#endif  // QLORAD_CORE_SERVICE_CORE_IMPL_H_

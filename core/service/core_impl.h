// The ServiceCore implementation (private to core/service): a thin front that owns the
// parts and forwards each call to the one that owns the noun —
//   datasets.cc        datasets (DaemonStore rows + core/data ingestion)      ["data"]
//   job_queue.h        training jobs, workers, events; training_job.cc       ["train"]
//   adapter_catalog.h  adapters: decide.cc, deploy.cc, residency.cc, upload/export
//   promotion_gate.h   the adapter CI gate in front of the catalog's promote (promote.cc)
//   eval::EvaluationRunner (core/eval) over EngineScorer ["baseline", "evaluate"]
//   interactive_review.h  the review console's queue, sessions, judgements, audit trail
//   drift_tracker.h / drift_profile.h                                          ["drift"]
//   inference.cc       generation and classification; stats.cc the counters.
// Start (core_impl.cc): open the store, the engine, requeue interrupted jobs, rebuild
// engine residency from the stored loaded flags, start the workers.
#ifndef QLORAD_CORE_SERVICE_CORE_IMPL_H_
#define QLORAD_CORE_SERVICE_CORE_IMPL_H_

#include <memory>
#include <string>
#include <vector>

#include "core/data/dataset_store.h"
#include "core/eval/evaluation_runner.h"
#include "core/serve/serving_engine.h"
#include "core/service/adapter_catalog.h"
#include "core/service/daemon_store.h"
#include "core/service/drift_tracker.h"
#include "core/service/engine_scorer.h"
#include "core/service/interactive_review.h"
#include "core/service/job_queue.h"
#include "core/service/promotion_gate.h"
#include "core/service/service_core.h"
#include "core/store/adapter_store.h"
#include "core/store/shared_store.h"
#include "core/util/status_macros.h"

namespace qlorad::service {

class ServiceCoreImpl : public ServiceCore {
 public:
  explicit ServiceCoreImpl(const CoreOptions& options) : options_(options) {}
  ~ServiceCoreImpl() override { Shutdown(); }
  absl::Status Init();

  void Shutdown() override {
    if (jobs_) jobs_->Shutdown();
  }

  absl::StatusOr<DatasetInfo> CreateDataset(const DatasetUpload& upload) override;
  absl::StatusOr<DatasetInfo> GetDataset(const std::string& id) override;
  absl::StatusOr<std::vector<DatasetInfo>> ListDatasets(const Page& page, std::string* next_page_token) override;
  absl::Status DeleteDataset(const std::string& id, const std::string& actor) override;

  absl::StatusOr<JobInfo> SubmitJob(const JobSpec& spec, const std::string& actor) override {
    return jobs_->SubmitJob(spec, actor);
  }
  absl::StatusOr<JobInfo> GetJob(const std::string& id) override { return jobs_->GetJob(id); }
  absl::StatusOr<std::vector<JobInfo>> ListJobs(const Page& page, std::string* next_page_token) override {
    return jobs_->ListJobs(page, next_page_token);
  }
  absl::StatusOr<JobInfo> CancelJob(const std::string& id, const std::string& actor) override {
    return jobs_->CancelJob(id, actor);
  }
  absl::StatusOr<std::vector<JobEvent>> WaitJobEvents(const std::string& id, int64_t after_seq, int64_t timeout_ms,
                                                      bool* terminal) override {
    return jobs_->WaitJobEvents(id, after_seq, timeout_ms, terminal);
  }

  absl::StatusOr<std::vector<AdapterInfo>> ListAdapters(const Page& page, std::string* next_page_token) override {
    return adapters_->List(page, next_page_token);
  }
  absl::StatusOr<AdapterInfo> GetAdapter(const std::string& ref) override { return adapters_->Get(ref); }
  std::vector<UnloadableAdapter> UnloadableAdapters() override { return adapters_->Unloadable(); }
  absl::StatusOr<AdapterInfo> ImportAdapter(const std::string& name, const std::string& path, bool allow_base_mismatch,
                                            const std::string& actor) override {
    return adapters_->Import(name, path, allow_base_mismatch, actor);
  }
  absl::StatusOr<std::string> BeginAdapterUpload(const AdapterUpload& upload) override {
    return adapters_->BeginUpload(upload);
  }
  absl::StatusOr<AdapterInfo> UploadAdapter(const AdapterUpload& upload) override { return adapters_->Upload(upload); }
  absl::StatusOr<AdapterExport> ExportAdapter(const AdapterExportRequest& request) override {
    return adapters_->Export(request);
  }
  absl::StatusOr<AdapterInfo> LoadAdapter(const std::string& ref, bool allow_base_mismatch, bool pin,
                                          const std::string& actor) override {
    return adapters_->Load(ref, allow_base_mismatch, pin, actor);
  }
  absl::StatusOr<AdapterInfo> UnloadAdapter(const std::string& ref, const std::string& actor) override {
    return adapters_->Unload(ref, actor);
  }
  // promote.cc: the CI gate (promotion_gate.h), then the catalog's promote.
  absl::StatusOr<PromoteResult> Promote(const PromoteInput& input) override;
  absl::StatusOr<PromotionCheck> CheckPromotion(const std::string& ref, const std::string& alias) override;
  absl::StatusOr<AdapterInfo> Decide(const std::string& ref, bool approve, const DecisionInput& decision) override {
    return adapters_->Decide(ref, approve, decision);
  }
  absl::Status DeleteAdapter(const std::string& ref, const std::string& actor) override {
    return adapters_->Delete(ref, actor);
  }

  absl::StatusOr<GenerateOutput> Generate(const GenerateInput& input, const TextPieceCallback& on_piece) override;
  absl::StatusOr<ClassifyOutput> Classify(const std::string& adapter, const std::string& text,
                                          const std::vector<std::string>& labels) override;
  absl::StatusOr<EvaluationInfo> Evaluate(const EvaluationInput& input) override;
  absl::StatusOr<EvaluationInfo> GetEvaluation(const std::string& id) override;
  absl::StatusOr<ReviewExport> ExportReviewSample(const ReviewExportInput& input) override;
  absl::StatusOr<nlohmann::json> ImportReviews(const std::string& evaluation_id, const std::vector<ReviewerFile>& files,
                                               const std::string& actor) override;
  std::vector<std::string> devices() const override { return devices_; }
  // Interactive review (interactive_review.h).
  absl::StatusOr<std::vector<ReviewQueueEntry>> ListReviewQueue(const std::string& reviewer) override {
    return reviews_->Queue(reviewer);
  }
  absl::StatusOr<ReviewSessionInfo> GetReviewSession(const std::string& evaluation_id,
                                                     const std::string& reviewer) override {
    return reviews_->Session(evaluation_id, reviewer);
  }
  absl::Status SaveJudgement(const std::string& evaluation_id, const std::string& reviewer,
                             const ItemJudgement& judgement) override {
    return reviews_->Save(evaluation_id, reviewer, judgement);
  }
  absl::StatusOr<nlohmann::json> SubmitReview(const std::string& evaluation_id, const std::string& reviewer) override {
    return reviews_->Submit(evaluation_id, reviewer);
  }
  absl::StatusOr<std::vector<nlohmann::json>> AuditTrail(const std::string& subject) override {
    return reviews_->AuditTrail(subject);
  }
  std::vector<DriftInfo> DriftReports() override;
  void FlushDrift() override { drift_->Flush(); }
  CoreStats Stats() override;

  const CoreOptions& options() const override { return options_; }
  std::string base_fingerprint() const override { return engine_->fingerprint(); }
  std::string upload_dir() const override { return options_.state_dir + "/uploads"; }

 private:
  absl::Status OpenEngine();

  CoreOptions options_;
  std::vector<std::string> devices_;
  std::unique_ptr<store::SharedStore> db_;
  std::unique_ptr<DaemonStore> store_;  // datasets, jobs
  std::unique_ptr<store::AdapterStore> adapter_store_;
  std::unique_ptr<data::DatasetStore> datasets_;
  std::unique_ptr<serve::ServingEngine> engine_;
  std::unique_ptr<DriftTracker> drift_;  // after engine_: destroyed first (its worker uses the engine)
  std::unique_ptr<EngineScorer> scorer_;
  std::unique_ptr<eval::EvaluationRunner> evaluations_;
  std::unique_ptr<InteractiveReview> reviews_;
  std::unique_ptr<AdapterCatalog> adapters_;
  std::unique_ptr<PromotionGate> gate_;
  std::unique_ptr<JobQueue> jobs_;  // last: its workers stop before anything they use goes
};

}  // namespace qlorad::service

#endif  // QLORAD_CORE_SERVICE_CORE_IMPL_H_

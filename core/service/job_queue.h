// JobQueue: the training job queue (the "train" step). Owns the job rows and event
// streams (through DaemonStore), the worker threads, placement (highest priority, then
// earliest submission; the head job waits until as many training devices as it asks for
// are free, and later jobs wait behind it, so a multi-device job is never starved),
// cancellation and the drain on shutdown. The training run itself
// is training_job.cc; the finished adapter goes to the callbacks the service gives
// (drift profile, registration in the adapter catalog).
//
// Lock order: mu_ before the store's lock (a worker claims a job under mu_); never the
// other way round.
#ifndef QLORAD_CORE_SERVICE_JOB_QUEUE_H_
#define QLORAD_CORE_SERVICE_JOB_QUEUE_H_

#include <atomic>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/data/dataset_store.h"
#include "core/service/daemon_store.h"
#include "core/service/service_core.h"
#include "core/store/shared_store.h"
#include "core/util/path_name.h"

namespace qlorad::service {

// INVALID_ARGUMENT naming adapter_name unless it matches [a-z0-9][a-z0-9._-]{0,63}.
// Adapter names become a directory (adapters/<name>/<version>): path_name.h's rules,
// lowercase, at most 64 bytes ([a-z0-9][a-z0-9._-]{0,63}; the version is assigned).
inline constexpr PathNameRules kAdapterNameRules{64, true};
// INVALID_ARGUMENT naming `field` when `name` breaks kAdapterNameRules.
absl::Status ValidateAdapterName(const std::string& name, absl::string_view field = "adapter_name");

// Names of the training device slots, one per entry of `devices`: the device itself, or
// "<device>#<k>" when it repeats ("cpu,cpu" -> "cpu#0", "cpu#1"). Metrics and the job API
// use these names.
std::vector<std::string> DeviceSlotNames(const std::vector<std::string>& devices);

// A finished training run's adapter, handed to the registration callback.
struct TrainedAdapter {
  std::string job_id, actor, name, dir, base_fingerprint, dataset_id;
  double final_loss = 0;
};

class JobQueue {
 public:
  // Builds the drift profile of `dataset_id`'s training prompts into `dir`.
  using ProfileFn = std::function<absl::Status(const std::string& dataset_id, const std::string& dir)>;
  // Registers the adapter (one store transaction); returns its id (name@version).
  using RegisterFn = std::function<absl::StatusOr<std::string>(const TrainedAdapter& adapter)>;
  // The adapter a job registered, if any (restart recovery).
  using FindAdapterFn = std::function<absl::StatusOr<std::optional<std::string>>(const std::string& job_id)>;

  // Every pointer must outlive the queue; `options` is the daemon's.
  JobQueue(const CoreOptions& options, DaemonStore* store, store::SharedStore* db, data::DatasetStore* datasets,
           ProfileFn profile, RegisterFn register_adapter, FindAdapterFn adapter_of_job);
  ~JobQueue() { Shutdown(); }

  // Requeues jobs a stopped daemon left running (they resume from their checkpoint); a
  // job killed after registering its adapter is finished as succeeded with that adapter.
  absl::Status Recover();
  void StartWorkers(int count);
  // Refuses new jobs, asks running ones to checkpoint and stop (they stay queued), joins.
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);

  absl::StatusOr<JobInfo> SubmitJob(const JobSpec& spec, const std::string& actor);
  absl::StatusOr<JobInfo> GetJob(const std::string& id);
  absl::StatusOr<std::vector<JobInfo>> ListJobs(const Page& page, std::string* next_page_token);
  absl::StatusOr<JobInfo> CancelJob(const std::string& id, const std::string& actor) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<std::vector<JobEvent>> WaitJobEvents(const std::string& id, int64_t after_seq, int64_t timeout_ms,
                                                      bool* terminal) ABSL_LOCKS_EXCLUDED(mu_);
  // Each training device slot's name and whether a running job holds it.
  std::vector<std::pair<std::string, bool>> DeviceBusy() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void WorkerLoop() ABSL_LOCKS_EXCLUDED(mu_);
  // The next queued job and the free slots it gets, if enough are free (marked held).
  std::optional<std::pair<JobRow, std::vector<int>>> ClaimNextJob() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RunJob(JobRow job, const std::vector<int>& slots) ABSL_LOCKS_EXCLUDED(mu_);  // training_job.cc
  absl::Status AppendEvent(const std::string& job_id, nlohmann::json event) ABSL_LOCKS_EXCLUDED(events_mu_);
  // Stores the job's new status with its status event in one transaction.
  absl::Status FinishJob(JobRow& job, const std::string& status, const std::string& error)
      ABSL_LOCKS_EXCLUDED(events_mu_);
  void EventsAppended() ABSL_LOCKS_EXCLUDED(events_mu_);
  absl::Status Audit(const std::string& actor, const std::string& action, const std::string& subject,
                     const nlohmann::json& details);
  JobInfo ToJobInfo(const JobRow& row) const;

  const CoreOptions& options_;
  DaemonStore* store_;
  store::SharedStore* db_;
  data::DatasetStore* datasets_;
  ProfileFn profile_;
  RegisterFn register_adapter_;
  FindAdapterFn adapter_of_job_;

  absl::Mutex mu_;
  absl::CondVar jobs_cv_;  // new queued job, or stopping (signalled holding mu_: a worker never misses it)
  // Job events: a generation counter bumped after every append, so a waiter that read the
  // store before an append never sleeps through it. Lock order: mu_ before events_mu_.
  absl::Mutex events_mu_ ABSL_ACQUIRED_AFTER(mu_);
  absl::CondVar events_cv_;
  uint64_t events_generation_ ABSL_GUARDED_BY(events_mu_) = 0;
  std::set<std::string> cancel_requested_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> running_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> slot_devices_, slot_names_;     // fixed at construction
  std::vector<std::string> slot_holder_ ABSL_GUARDED_BY(mu_);  // job id, "" = free
  std::atomic<bool> stopping_{false};
  std::vector<std::thread> workers_;  // started and joined by the owner's thread only
};

}  // namespace qlorad::service

#endif  // QLORAD_CORE_SERVICE_JOB_QUEUE_H_

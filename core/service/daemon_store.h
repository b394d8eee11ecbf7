// The daemon's tables on top of core/store (migrations from kFirstDaemonMigrationVersion):
// datasets, training jobs and their event streams, adapters (name@version) and aliases.
// The adapter lifecycle, approvals, evaluations and the audit log are core/store's own
// tables, shared through the same Store. Thread-safe: one mutex around the connection.
#ifndef QLORAD_CORE_SERVICE_DAEMON_STORE_H_
#define QLORAD_CORE_SERVICE_DAEMON_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/store/store.h"
#include "nlohmann/json.hpp"

namespace qlorad::service {

struct DatasetRow {
  std::string id, created_at, format, train_sha256, holdout_sha256, actor;
  int64_t train_examples = 0, holdout_examples = 0;
};

struct JobRow {
  std::string id;
  int64_t seq = 0;  // submission order
  std::string status;  // validating | queued | running | succeeded | failed | cancelled
  int64_t priority = 0;
  nlohmann::json spec;
  std::string created_at, started_at, finished_at, error, adapter_id, actor;
  nlohmann::json progress = nlohmann::json::object();  // last step/loss/lr/tokens_per_second/eta
};

struct AdapterRow {
  std::string id;  // name@version
  std::string name;
  int64_t version = 0;
  std::string job_id, path, base_fingerprint, dataset_id, created_at;
  bool loaded = false;
};

struct JobEventRow {
  int64_t seq = 0;
  std::string at;
  nlohmann::json event;
};

// Migrations 100.. of the daemon (after core/store's CoreMigrations()).
std::vector<store::Migration> DaemonMigrations();

class DaemonStore {
 public:
  // Opens (creating) `path` with core + daemon migrations.
  static absl::StatusOr<std::unique_ptr<DaemonStore>> Open(const std::string& path);

  // Runs fn with the raw Store under the lock (for core/store repositories).
  absl::Status WithStore(const std::function<absl::Status(store::Store&)>& fn);

  absl::Status PutDataset(const DatasetRow& row);
  absl::StatusOr<DatasetRow> GetDataset(const std::string& id);
  absl::StatusOr<std::vector<DatasetRow>> ListDatasets(const std::string& after_id, int64_t limit);
  absl::Status DeleteDataset(const std::string& id);

  absl::StatusOr<JobRow> InsertJob(JobRow row);  // assigns seq
  absl::StatusOr<JobRow> GetJob(const std::string& id);
  absl::StatusOr<std::vector<JobRow>> ListJobs(int64_t after_seq, int64_t limit);
  absl::StatusOr<std::vector<JobRow>> JobsWithStatus(const std::string& status);
  absl::StatusOr<int64_t> CountJobsWithStatus(const std::string& status);
  // The next queued job: highest priority, then earliest submission.
  absl::StatusOr<std::optional<JobRow>> NextQueuedJob();
  absl::Status UpdateJob(const JobRow& row);  // status, times, error, adapter_id, progress
  absl::StatusOr<int64_t> AppendJobEvent(const std::string& job_id, const std::string& at, const nlohmann::json& event);
  absl::StatusOr<std::vector<JobEventRow>> JobEventsAfter(const std::string& job_id, int64_t after_seq);

  absl::StatusOr<int64_t> NextAdapterVersion(const std::string& name);
  absl::Status InsertAdapter(const AdapterRow& row);
  absl::StatusOr<AdapterRow> GetAdapter(const std::string& id);
  absl::StatusOr<std::vector<AdapterRow>> ListAdapters(const std::string& after_id, int64_t limit);
  absl::Status SetAdapterLoaded(const std::string& id, bool loaded);
  absl::StatusOr<int64_t> CountAdapters();
  absl::Status DeleteAdapter(const std::string& id);

  // Review samples (with the blind key) and imported review summaries of evaluations.
  absl::Status PutReviewSample(const std::string& evaluation_id, const nlohmann::json& sample, const std::string& at);
  absl::StatusOr<nlohmann::json> GetReviewSample(const std::string& evaluation_id);
  absl::Status AddReview(const std::string& evaluation_id, const nlohmann::json& summary, const std::string& at);
  absl::StatusOr<std::optional<nlohmann::json>> LatestReview(const std::string& evaluation_id);

  absl::Status SetAlias(const std::string& alias, const std::string& adapter_id, const std::string& at);
  absl::StatusOr<std::optional<std::string>> ResolveAlias(const std::string& alias);
  absl::StatusOr<std::vector<std::string>> AliasesOf(const std::string& adapter_id);

 private:
  explicit DaemonStore(std::unique_ptr<store::Store> store) : store_(std::move(store)) {}
  std::mutex mu_;
  std::unique_ptr<store::Store> store_;
};

}  // namespace qlorad::service

#endif  // QLORAD_CORE_SERVICE_DAEMON_STORE_H_

// The daemon's dataset and job tables (core/store/daemon_migrations.h): datasets,
// training jobs and their event streams. Adapters, aliases and reviews are core/store's
// (adapter_store.h, review_repository.h), in the same database through one SharedStore.
// Thread-safe (the SharedStore's lock).
#ifndef QLORAD_CORE_SERVICE_DAEMON_STORE_H_
#define QLORAD_CORE_SERVICE_DAEMON_STORE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/store/shared_store.h"
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

struct JobEventRow {
  int64_t seq = 0;
  std::string at;
  nlohmann::json event;
};

class DaemonStore {
 public:
  // `db` must have store::DaemonDatabaseMigrations() applied and outlive this object.
  explicit DaemonStore(store::SharedStore* db) : db_(db) {}

  // Inserts the row and its audit entry ("create", actor row.actor, `audit_details`) in
  // one transaction: both or neither.
  absl::Status PutDataset(const DatasetRow& row, const nlohmann::json& audit_details);
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
  // UpdateJob and AppendJobEvent of `row`'s status event in ONE transaction (a crash never
  // leaves a finished job without its terminal event).
  absl::Status UpdateJobWithEvent(const JobRow& row, const std::string& at, const nlohmann::json& event);
  absl::StatusOr<std::vector<JobEventRow>> JobEventsAfter(const std::string& job_id, int64_t after_seq);

 private:
  store::SharedStore* db_;
};

}  // namespace qlorad::service

#endif  // QLORAD_CORE_SERVICE_DAEMON_STORE_H_

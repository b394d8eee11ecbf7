#include "core/service/daemon_store.h"

#include "absl/strings/str_cat.h"
#include "core/store/audit_log.h"
#include "core/util/status_macros.h"

namespace qlorad::service {
namespace {

using store::Statement;

DatasetRow ReadDataset(const Statement& s) {
  return {s.ColumnText(0), s.ColumnText(1), s.ColumnText(2), s.ColumnText(3), s.ColumnText(4), s.ColumnText(5),
          s.ColumnInt64(6), s.ColumnInt64(7)};
}
constexpr char kDatasetColumns[] =
    "id, created_at, format, train_sha256, holdout_sha256, actor, train_examples, holdout_examples";

constexpr char kJobColumns[] =
    "id, seq, status, priority, spec_json, created_at, started_at, finished_at, error, adapter_id, actor, progress_json";
JobRow ReadJob(const Statement& s) {
  JobRow row;
  row.id = s.ColumnText(0);
  row.seq = s.ColumnInt64(1);
  row.status = s.ColumnText(2);
  row.priority = s.ColumnInt64(3);
  row.spec = nlohmann::json::parse(s.ColumnText(4), nullptr, false);
  row.created_at = s.ColumnText(5);
  row.started_at = s.ColumnText(6);
  row.finished_at = s.ColumnText(7);
  row.error = s.ColumnText(8);
  row.adapter_id = s.ColumnText(9);
  row.actor = s.ColumnText(10);
  row.progress = nlohmann::json::parse(s.ColumnText(11), nullptr, false);
  return row;
}

template <typename Row, typename Reader>
absl::StatusOr<Row> One(Statement& s, Reader read, const std::string& what) {
  QLORAD_ASSIGN_OR_RETURN(bool found, s.Step());
  if (!found) return absl::NotFoundError(what);
  return read(s);
}

absl::Status UpdateJobRow(store::Store& db, const JobRow& r) {
  QLORAD_ASSIGN_OR_RETURN(Statement s, db.Prepare(
                                           "UPDATE jobs SET status = ?, started_at = ?, finished_at = ?, error = ?, "
                                           "adapter_id = ?, progress_json = ? WHERE id = ?"));
  return s.Bind(1, r.status).Bind(2, r.started_at).Bind(3, r.finished_at).Bind(4, r.error).Bind(5, r.adapter_id)
      .Bind(6, r.progress.dump()).Bind(7, r.id).Run();
}

// Appends `event` as the job's next event (inside the caller's transaction).
absl::Status InsertJobEvent(store::Store& db, const std::string& job_id, const std::string& at,
                            const nlohmann::json& event, int64_t* seq) {
  QLORAD_ASSIGN_OR_RETURN(Statement next, db.Prepare("SELECT COALESCE(MAX(seq), 0) + 1 FROM job_events WHERE job_id = ?"));
  next.Bind(1, job_id);
  QLORAD_RETURN_IF_ERROR(next.Step().status());
  *seq = next.ColumnInt64(0);
  QLORAD_ASSIGN_OR_RETURN(Statement s, db.Prepare("INSERT INTO job_events (job_id, seq, at, event_json) VALUES (?,?,?,?)"));
  return s.Bind(1, job_id).Bind(2, *seq).Bind(3, at).Bind(4, event.dump()).Run();
}

}  // namespace

absl::Status DaemonStore::PutDataset(const DatasetRow& r, const nlohmann::json& audit_details) {
  return db_->With([&](store::Store& db) {
    return db.InTransaction([&]() -> absl::Status {
      QLORAD_ASSIGN_OR_RETURN(Statement s, db.Prepare(absl::StrCat("INSERT INTO datasets (", kDatasetColumns,
                                                                        ") VALUES (?,?,?,?,?,?,?,?)")));
      QLORAD_RETURN_IF_ERROR(s.Bind(1, r.id).Bind(2, r.created_at).Bind(3, r.format).Bind(4, r.train_sha256)
                                 .Bind(5, r.holdout_sha256).Bind(6, r.actor).Bind(7, r.train_examples)
                                 .Bind(8, r.holdout_examples).Run());
      store::AuditEntry entry;
      entry.at = r.created_at;
      entry.actor = r.actor.empty() ? "system" : r.actor;
      entry.entity_type = "dataset";
      entry.entity_id = r.id;
      entry.action = "create";
      entry.details = audit_details;
      return store::AuditLog(&db).Append(entry).status();
    });
  });
}

absl::StatusOr<DatasetRow> DaemonStore::GetDataset(const std::string& id) {
  return db_->Read<DatasetRow>([&](store::Store& db) -> absl::StatusOr<DatasetRow> {
    QLORAD_ASSIGN_OR_RETURN(Statement s, db.Prepare(absl::StrCat("SELECT ", kDatasetColumns, " FROM datasets WHERE id = ?")));
    s.Bind(1, id);
    return One<DatasetRow>(s, ReadDataset, absl::StrCat("dataset '", id, "' not found"));
  });
}

absl::StatusOr<std::vector<DatasetRow>> DaemonStore::ListDatasets(const std::string& after_id, int64_t limit) {
  return db_->Read<std::vector<DatasetRow>>([&](store::Store& db) -> absl::StatusOr<std::vector<DatasetRow>> {
    QLORAD_ASSIGN_OR_RETURN(Statement s, db.Prepare(absl::StrCat("SELECT ", kDatasetColumns,
                                                                      " FROM datasets WHERE id > ? ORDER BY id LIMIT ?")));
    s.Bind(1, after_id).Bind(2, limit);
    return store::CollectRows<DatasetRow>(s, ReadDataset);
  });
}

absl::Status DaemonStore::DeleteDataset(const std::string& id) {
  return db_->With([&](store::Store& db) -> absl::Status {
    QLORAD_ASSIGN_OR_RETURN(Statement s, db.Prepare("DELETE FROM datasets WHERE id = ?"));
    return s.Bind(1, id).Run();
  });
}

absl::StatusOr<JobRow> DaemonStore::InsertJob(JobRow row) {
  return db_->Read<JobRow>([&](store::Store& db) -> absl::StatusOr<JobRow> {
    absl::Status status = db.InTransaction([&]() -> absl::Status {
      QLORAD_ASSIGN_OR_RETURN(Statement next, db.Prepare("SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs"));
      QLORAD_RETURN_IF_ERROR(next.Step().status());
      row.seq = next.ColumnInt64(0);
      QLORAD_ASSIGN_OR_RETURN(Statement s, db.Prepare(absl::StrCat("INSERT INTO jobs (", kJobColumns,
                                                                        ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?)")));
      return s.Bind(1, row.id).Bind(2, row.seq).Bind(3, row.status).Bind(4, row.priority).Bind(5, row.spec.dump())
          .Bind(6, row.created_at).Bind(7, row.started_at).Bind(8, row.finished_at).Bind(9, row.error)
          .Bind(10, row.adapter_id).Bind(11, row.actor).Bind(12, row.progress.dump()).Run();
    });
    if (!status.ok()) return status;
    return row;
  });
}

absl::StatusOr<JobRow> DaemonStore::GetJob(const std::string& id) {
  return db_->Read<JobRow>([&](store::Store& db) -> absl::StatusOr<JobRow> {
    QLORAD_ASSIGN_OR_RETURN(Statement s, db.Prepare(absl::StrCat("SELECT ", kJobColumns, " FROM jobs WHERE id = ?")));
    s.Bind(1, id);
    return One<JobRow>(s, ReadJob, absl::StrCat("job '", id, "' not found"));
  });
}

absl::StatusOr<std::vector<JobRow>> DaemonStore::ListJobs(int64_t after_seq, int64_t limit) {
  return db_->Read<std::vector<JobRow>>([&](store::Store& db) -> absl::StatusOr<std::vector<JobRow>> {
    QLORAD_ASSIGN_OR_RETURN(Statement s, db.Prepare(absl::StrCat("SELECT ", kJobColumns,
                                                                      " FROM jobs WHERE seq > ? ORDER BY seq LIMIT ?")));
    s.Bind(1, after_seq).Bind(2, limit);
    return store::CollectRows<JobRow>(s, ReadJob);
  });
}

absl::StatusOr<std::vector<JobRow>> DaemonStore::JobsWithStatus(const std::string& status) {
  return db_->Read<std::vector<JobRow>>([&](store::Store& db) -> absl::StatusOr<std::vector<JobRow>> {
    QLORAD_ASSIGN_OR_RETURN(Statement s, db.Prepare(absl::StrCat("SELECT ", kJobColumns,
                                                                      " FROM jobs WHERE status = ? ORDER BY seq")));
    s.Bind(1, status);
    return store::CollectRows<JobRow>(s, ReadJob);
  });
}

absl::StatusOr<int64_t> DaemonStore::CountJobsWithStatus(const std::string& status) {
  return db_->Read<int64_t>([&](store::Store& db) -> absl::StatusOr<int64_t> {
    QLORAD_ASSIGN_OR_RETURN(Statement s, db.Prepare("SELECT COUNT(*) FROM jobs WHERE status = ?"));
    s.Bind(1, status);
    QLORAD_RETURN_IF_ERROR(s.Step().status());
    return s.ColumnInt64(0);
  });
}

absl::StatusOr<std::optional<JobRow>> DaemonStore::NextQueuedJob() {
  return db_->Read<std::optional<JobRow>>([&](store::Store& db) -> absl::StatusOr<std::optional<JobRow>> {
    QLORAD_ASSIGN_OR_RETURN(Statement s, db.Prepare(absl::StrCat(
                                             "SELECT ", kJobColumns,
                                             " FROM jobs WHERE status = 'queued' ORDER BY priority DESC, seq LIMIT 1")));
    QLORAD_ASSIGN_OR_RETURN(bool found, s.Step());
    if (!found) return std::optional<JobRow>();
    return std::optional<JobRow>(ReadJob(s));
  });
}

absl::Status DaemonStore::UpdateJob(const JobRow& r) {
  return db_->With([&](store::Store& db) { return UpdateJobRow(db, r); });
}

absl::StatusOr<int64_t> DaemonStore::AppendJobEvent(const std::string& job_id, const std::string& at,
                                                     const nlohmann::json& event) {
  return db_->Read<int64_t>([&](store::Store& db) -> absl::StatusOr<int64_t> {
    int64_t seq = 0;
    QLORAD_RETURN_IF_ERROR(db.InTransaction([&] { return InsertJobEvent(db, job_id, at, event, &seq); }));
    return seq;
  });
}

absl::Status DaemonStore::UpdateJobWithEvent(const JobRow& row, const std::string& at, const nlohmann::json& event) {
  return db_->With([&](store::Store& db) {
    return db.InTransaction([&]() -> absl::Status {
      QLORAD_RETURN_IF_ERROR(UpdateJobRow(db, row));
      int64_t seq = 0;
      return InsertJobEvent(db, row.id, at, event, &seq);
    });
  });
}

absl::StatusOr<std::vector<JobEventRow>> DaemonStore::JobEventsAfter(const std::string& job_id, int64_t after_seq) {
  return db_->Read<std::vector<JobEventRow>>([&](store::Store& db) -> absl::StatusOr<std::vector<JobEventRow>> {
    QLORAD_ASSIGN_OR_RETURN(Statement s, db.Prepare(
                                             "SELECT seq, at, event_json FROM job_events WHERE job_id = ? AND seq > ? ORDER BY seq"));
    s.Bind(1, job_id).Bind(2, after_seq);
    return store::CollectRows<JobEventRow>(s, [](const Statement& st) {
      return JobEventRow{st.ColumnInt64(0), st.ColumnText(1), nlohmann::json::parse(st.ColumnText(2), nullptr, false)};
    });
  });
}

}  // namespace qlorad::service

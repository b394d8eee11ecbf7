#include "core/service/daemon_store.h"

#include "absl/strings/str_cat.h"
#include "core/store/migrations.h"
#include "core/util/status_macros.h"

namespace qlorad::service {
namespace {

using store::Statement;

constexpr char kDaemonSchema[] = R"sql(
CREATE TABLE datasets (
  id               TEXT PRIMARY KEY,
  created_at       TEXT NOT NULL,
  actor            TEXT NOT NULL,
  format           TEXT NOT NULL,
  train_examples   INTEGER NOT NULL,
  holdout_examples INTEGER NOT NULL,
  train_sha256     TEXT NOT NULL,
  holdout_sha256   TEXT NOT NULL
);
CREATE TABLE jobs (
  id          TEXT PRIMARY KEY,
  seq         INTEGER NOT NULL UNIQUE,
  status      TEXT NOT NULL CHECK (status IN ('validating','queued','running','succeeded','failed','cancelled')),
  priority    INTEGER NOT NULL,
  spec_json   TEXT NOT NULL,
  created_at  TEXT NOT NULL,
  started_at  TEXT NOT NULL DEFAULT '',
  finished_at TEXT NOT NULL DEFAULT '',
  error       TEXT NOT NULL DEFAULT '',
  adapter_id  TEXT NOT NULL DEFAULT '',
  actor       TEXT NOT NULL,
  progress_json TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX jobs_queue ON jobs(status, priority DESC, seq);
CREATE TABLE job_events (
  job_id     TEXT NOT NULL REFERENCES jobs(id),
  seq        INTEGER NOT NULL,
  at         TEXT NOT NULL,
  event_json TEXT NOT NULL,
  PRIMARY KEY (job_id, seq)
);
CREATE TABLE adapters (
  id               TEXT PRIMARY KEY,
  name             TEXT NOT NULL,
  version          INTEGER NOT NULL,
  job_id           TEXT NOT NULL,
  path             TEXT NOT NULL,
  base_fingerprint TEXT NOT NULL,
  dataset_id       TEXT NOT NULL,
  created_at       TEXT NOT NULL,
  loaded           INTEGER NOT NULL DEFAULT 0,
  UNIQUE (name, version)
);
CREATE TABLE aliases (
  alias      TEXT PRIMARY KEY,
  adapter_id TEXT NOT NULL REFERENCES adapters(id),
  updated_at TEXT NOT NULL
);
)sql";

constexpr char kReviewSchema[] = R"sql(
CREATE TABLE review_samples (
  evaluation_id TEXT PRIMARY KEY,
  sample_json   TEXT NOT NULL,
  created_at    TEXT NOT NULL
);
CREATE TABLE evaluation_reviews (
  id            INTEGER PRIMARY KEY AUTOINCREMENT,
  evaluation_id TEXT NOT NULL,
  summary_json  TEXT NOT NULL,
  imported_at   TEXT NOT NULL
);
CREATE TRIGGER evaluation_reviews_append_only BEFORE UPDATE ON evaluation_reviews
BEGIN SELECT RAISE(ABORT, 'evaluation_reviews is append-only'); END;
)sql";

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

constexpr char kAdapterColumns[] = "id, name, version, job_id, path, base_fingerprint, dataset_id, created_at, loaded";
AdapterRow ReadAdapter(const Statement& s) {
  return {s.ColumnText(0), s.ColumnText(1), s.ColumnInt64(2), s.ColumnText(3), s.ColumnText(4),
          s.ColumnText(5), s.ColumnText(6), s.ColumnText(7), s.ColumnInt64(8) != 0};
}

template <typename Row, typename Reader>
absl::StatusOr<Row> One(Statement& s, Reader read, const std::string& what) {
  QLORAD_ASSIGN_OR_RETURN(bool found, s.Step());
  if (!found) return absl::NotFoundError(what);
  return read(s);
}

}  // namespace

std::vector<store::Migration> DaemonMigrations() {
  return {{store::kFirstDaemonMigrationVersion, "daemon_datasets_jobs_adapters", kDaemonSchema},
          {store::kFirstDaemonMigrationVersion + 1, "evaluation_reviews", kReviewSchema}};
}

absl::StatusOr<std::unique_ptr<DaemonStore>> DaemonStore::Open(const std::string& path) {
  std::vector<store::Migration> migrations = store::CoreMigrations();
  for (auto& m : DaemonMigrations()) migrations.push_back(std::move(m));
  QLORAD_ASSIGN_OR_RETURN(auto s, store::Store::Open(path, migrations));
  return std::unique_ptr<DaemonStore>(new DaemonStore(std::move(s)));
}

absl::Status DaemonStore::WithStore(const std::function<absl::Status(store::Store&)>& fn) {
  std::lock_guard<std::mutex> lock(mu_);
  return fn(*store_);
}

absl::Status DaemonStore::PutDataset(const DatasetRow& r) {
  std::lock_guard<std::mutex> lock(mu_);
  QLORAD_ASSIGN_OR_RETURN(Statement s, store_->Prepare(absl::StrCat("INSERT INTO datasets (", kDatasetColumns,
                                                                    ") VALUES (?,?,?,?,?,?,?,?)")));
  return s.Bind(1, r.id).Bind(2, r.created_at).Bind(3, r.format).Bind(4, r.train_sha256).Bind(5, r.holdout_sha256)
      .Bind(6, r.actor).Bind(7, r.train_examples).Bind(8, r.holdout_examples).Run();
}

absl::StatusOr<DatasetRow> DaemonStore::GetDataset(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  QLORAD_ASSIGN_OR_RETURN(Statement s, store_->Prepare(absl::StrCat("SELECT ", kDatasetColumns, " FROM datasets WHERE id = ?")));
  s.Bind(1, id);
  return One<DatasetRow>(s, ReadDataset, absl::StrCat("dataset '", id, "' not found"));
}

absl::StatusOr<std::vector<DatasetRow>> DaemonStore::ListDatasets(const std::string& after_id, int64_t limit) {
  std::lock_guard<std::mutex> lock(mu_);
  QLORAD_ASSIGN_OR_RETURN(Statement s, store_->Prepare(absl::StrCat("SELECT ", kDatasetColumns,
                                                                    " FROM datasets WHERE id > ? ORDER BY id LIMIT ?")));
  s.Bind(1, after_id).Bind(2, limit);
  return store::CollectRows<DatasetRow>(s, ReadDataset);
}

absl::Status DaemonStore::DeleteDataset(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  QLORAD_ASSIGN_OR_RETURN(Statement s, store_->Prepare("DELETE FROM datasets WHERE id = ?"));
  return s.Bind(1, id).Run();
}

absl::StatusOr<JobRow> DaemonStore::InsertJob(JobRow row) {
  std::lock_guard<std::mutex> lock(mu_);
  absl::Status status = store_->InTransaction([&]() -> absl::Status {
    QLORAD_ASSIGN_OR_RETURN(Statement next, store_->Prepare("SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs"));
    QLORAD_RETURN_IF_ERROR(next.Step().status());
    row.seq = next.ColumnInt64(0);
    QLORAD_ASSIGN_OR_RETURN(Statement s, store_->Prepare(absl::StrCat("INSERT INTO jobs (", kJobColumns,
                                                                      ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?)")));
    return s.Bind(1, row.id).Bind(2, row.seq).Bind(3, row.status).Bind(4, row.priority).Bind(5, row.spec.dump())
        .Bind(6, row.created_at).Bind(7, row.started_at).Bind(8, row.finished_at).Bind(9, row.error)
        .Bind(10, row.adapter_id).Bind(11, row.actor).Bind(12, row.progress.dump()).Run();
  });
  if (!status.ok()) return status;
  return row;
}

absl::StatusOr<JobRow> DaemonStore::GetJob(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  QLORAD_ASSIGN_OR_RETURN(Statement s, store_->Prepare(absl::StrCat("SELECT ", kJobColumns, " FROM jobs WHERE id = ?")));
  s.Bind(1, id);
  return One<JobRow>(s, ReadJob, absl::StrCat("job '", id, "' not found"));
}

absl::StatusOr<std::vector<JobRow>> DaemonStore::ListJobs(int64_t after_seq, int64_t limit) {
  std::lock_guard<std::mutex> lock(mu_);
  QLORAD_ASSIGN_OR_RETURN(Statement s, store_->Prepare(absl::StrCat("SELECT ", kJobColumns,
                                                                    " FROM jobs WHERE seq > ? ORDER BY seq LIMIT ?")));
  s.Bind(1, after_seq).Bind(2, limit);
  return store::CollectRows<JobRow>(s, ReadJob);
}

absl::StatusOr<std::vector<JobRow>> DaemonStore::JobsWithStatus(const std::string& status) {
  std::lock_guard<std::mutex> lock(mu_);
  QLORAD_ASSIGN_OR_RETURN(Statement s, store_->Prepare(absl::StrCat("SELECT ", kJobColumns,
                                                                    " FROM jobs WHERE status = ? ORDER BY seq")));
  s.Bind(1, status);
  return store::CollectRows<JobRow>(s, ReadJob);
}

absl::StatusOr<int64_t> DaemonStore::CountJobsWithStatus(const std::string& status) {
  std::lock_guard<std::mutex> lock(mu_);
  QLORAD_ASSIGN_OR_RETURN(Statement s, store_->Prepare("SELECT COUNT(*) FROM jobs WHERE status = ?"));
  s.Bind(1, status);
  QLORAD_RETURN_IF_ERROR(s.Step().status());
  return s.ColumnInt64(0);
}

absl::StatusOr<std::optional<JobRow>> DaemonStore::NextQueuedJob() {
  std::lock_guard<std::mutex> lock(mu_);
  QLORAD_ASSIGN_OR_RETURN(Statement s, store_->Prepare(absl::StrCat(
                                           "SELECT ", kJobColumns,
                                           " FROM jobs WHERE status = 'queued' ORDER BY priority DESC, seq LIMIT 1")));
  QLORAD_ASSIGN_OR_RETURN(bool found, s.Step());
  if (!found) return std::optional<JobRow>();
  return std::optional<JobRow>(ReadJob(s));
}

absl::Status DaemonStore::UpdateJob(const JobRow& r) {
  std::lock_guard<std::mutex> lock(mu_);
  QLORAD_ASSIGN_OR_RETURN(Statement s, store_->Prepare(
                                           "UPDATE jobs SET status = ?, started_at = ?, finished_at = ?, error = ?, "
                                           "adapter_id = ?, progress_json = ? WHERE id = ?"));
  return s.Bind(1, r.status).Bind(2, r.started_at).Bind(3, r.finished_at).Bind(4, r.error).Bind(5, r.adapter_id)
      .Bind(6, r.progress.dump()).Bind(7, r.id).Run();
}

absl::StatusOr<int64_t> DaemonStore::AppendJobEvent(const std::string& job_id, const std::string& at,
                                                     const nlohmann::json& event) {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t seq = 0;
  QLORAD_RETURN_IF_ERROR(store_->InTransaction([&]() -> absl::Status {
    QLORAD_ASSIGN_OR_RETURN(Statement next, store_->Prepare("SELECT COALESCE(MAX(seq), 0) + 1 FROM job_events WHERE job_id = ?"));
    next.Bind(1, job_id);
    QLORAD_RETURN_IF_ERROR(next.Step().status());
    seq = next.ColumnInt64(0);
    QLORAD_ASSIGN_OR_RETURN(Statement s, store_->Prepare("INSERT INTO job_events (job_id, seq, at, event_json) VALUES (?,?,?,?)"));
    return s.Bind(1, job_id).Bind(2, seq).Bind(3, at).Bind(4, event.dump()).Run();
  }));
  return seq;
}

absl::StatusOr<std::vector<JobEventRow>> DaemonStore::JobEventsAfter(const std::string& job_id, int64_t after_seq) {
  std::lock_guard<std::mutex> lock(mu_);
  QLORAD_ASSIGN_OR_RETURN(Statement s, store_->Prepare(
                                           "SELECT seq, at, event_json FROM job_events WHERE job_id = ? AND seq > ? ORDER BY seq"));
  s.Bind(1, job_id).Bind(2, after_seq);
  return store::CollectRows<JobEventRow>(s, [](const Statement& st) {
    return JobEventRow{st.ColumnInt64(0), st.ColumnText(1), nlohmann::json::parse(st.ColumnText(2), nullptr, false)};
  });
}

absl::StatusOr<int64_t> DaemonStore::NextAdapterVersion(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  QLORAD_ASSIGN_OR_RETURN(Statement s, store_->Prepare("SELECT COALESCE(MAX(version), 0) + 1 FROM adapters WHERE name = ?"));
  s.Bind(1, name);
  QLORAD_RETURN_IF_ERROR(s.Step().status());
  return s.ColumnInt64(0);
}

absl::Status DaemonStore::InsertAdapter(const AdapterRow& r) {
  std::lock_guard<std::mutex> lock(mu_);
  QLORAD_ASSIGN_OR_RETURN(Statement s, store_->Prepare(absl::StrCat("INSERT INTO adapters (", kAdapterColumns,
                                                                    ") VALUES (?,?,?,?,?,?,?,?,?)")));
  return s.Bind(1, r.id).Bind(2, r.name).Bind(3, r.version).Bind(4, r.job_id).Bind(5, r.path).Bind(6, r.base_fingerprint)
      .Bind(7, r.dataset_id).Bind(8, r.created_at).Bind(9, r.loaded ? 1 : 0).Run();
}

absl::StatusOr<AdapterRow> DaemonStore::GetAdapter(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  QLORAD_ASSIGN_OR_RETURN(Statement s, store_->Prepare(absl::StrCat("SELECT ", kAdapterColumns, " FROM adapters WHERE id = ?")));
  s.Bind(1, id);
  return One<AdapterRow>(s, ReadAdapter, absl::StrCat("adapter '", id, "' not found"));
}

absl::StatusOr<std::vector<AdapterRow>> DaemonStore::ListAdapters(const std::string& after_id, int64_t limit) {
  std::lock_guard<std::mutex> lock(mu_);
  QLORAD_ASSIGN_OR_RETURN(Statement s, store_->Prepare(absl::StrCat("SELECT ", kAdapterColumns,
                                                                    " FROM adapters WHERE id > ? ORDER BY id LIMIT ?")));
  s.Bind(1, after_id).Bind(2, limit);
  return store::CollectRows<AdapterRow>(s, ReadAdapter);
}

absl::StatusOr<int64_t> DaemonStore::CountAdapters() {
  std::lock_guard<std::mutex> lock(mu_);
  QLORAD_ASSIGN_OR_RETURN(Statement s, store_->Prepare("SELECT COUNT(*) FROM adapters"));
  QLORAD_RETURN_IF_ERROR(s.Step().status());
  return s.ColumnInt64(0);
}

absl::Status DaemonStore::SetAdapterLoaded(const std::string& id, bool loaded) {
  std::lock_guard<std::mutex> lock(mu_);
  QLORAD_ASSIGN_OR_RETURN(Statement s, store_->Prepare("UPDATE adapters SET loaded = ? WHERE id = ?"));
  return s.Bind(1, loaded ? 1 : 0).Bind(2, id).Run();
}

absl::Status DaemonStore::DeleteAdapter(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  return store_->InTransaction([&]() -> absl::Status {
    QLORAD_ASSIGN_OR_RETURN(Statement aliases, store_->Prepare("SELECT COUNT(*) FROM aliases WHERE adapter_id = ?"));
    aliases.Bind(1, id);
    QLORAD_RETURN_IF_ERROR(aliases.Step().status());
    if (aliases.ColumnInt64(0) > 0)
      return absl::FailedPreconditionError(absl::StrCat("adapter '", id, "' is the target of an alias (hint: move the alias first)"));
    QLORAD_ASSIGN_OR_RETURN(Statement s, store_->Prepare("DELETE FROM adapters WHERE id = ?"));
    return s.Bind(1, id).Run();
  });
}

absl::Status DaemonStore::PutReviewSample(const std::string& evaluation_id, const nlohmann::json& sample,
                                          const std::string& at) {
  std::lock_guard<std::mutex> lock(mu_);
  QLORAD_ASSIGN_OR_RETURN(Statement s, store_->Prepare(
                                           "INSERT INTO review_samples (evaluation_id, sample_json, created_at) VALUES (?,?,?) "
                                           "ON CONFLICT(evaluation_id) DO UPDATE SET sample_json = excluded.sample_json, "
                                           "created_at = excluded.created_at"));
  return s.Bind(1, evaluation_id).Bind(2, sample.dump()).Bind(3, at).Run();
}

absl::StatusOr<nlohmann::json> DaemonStore::GetReviewSample(const std::string& evaluation_id) {
  std::lock_guard<std::mutex> lock(mu_);
  QLORAD_ASSIGN_OR_RETURN(Statement s, store_->Prepare("SELECT sample_json FROM review_samples WHERE evaluation_id = ?"));
  s.Bind(1, evaluation_id);
  return One<nlohmann::json>(s, [](const Statement& st) { return nlohmann::json::parse(st.ColumnText(0), nullptr, false); },
                             absl::StrCat("evaluation '", evaluation_id, "' has no exported review sample (hint: export one first)"));
}

absl::Status DaemonStore::AddReview(const std::string& evaluation_id, const nlohmann::json& summary, const std::string& at) {
  std::lock_guard<std::mutex> lock(mu_);
  QLORAD_ASSIGN_OR_RETURN(Statement s, store_->Prepare(
                                           "INSERT INTO evaluation_reviews (evaluation_id, summary_json, imported_at) VALUES (?,?,?)"));
  return s.Bind(1, evaluation_id).Bind(2, summary.dump()).Bind(3, at).Run();
}

absl::StatusOr<std::optional<nlohmann::json>> DaemonStore::LatestReview(const std::string& evaluation_id) {
  std::lock_guard<std::mutex> lock(mu_);
  QLORAD_ASSIGN_OR_RETURN(Statement s, store_->Prepare(
                                           "SELECT summary_json FROM evaluation_reviews WHERE evaluation_id = ? ORDER BY id DESC LIMIT 1"));
  s.Bind(1, evaluation_id);
  QLORAD_ASSIGN_OR_RETURN(bool found, s.Step());
  if (!found) return std::optional<nlohmann::json>();
  return std::optional<nlohmann::json>(nlohmann::json::parse(s.ColumnText(0), nullptr, false));
}

absl::Status DaemonStore::SetAlias(const std::string& alias, const std::string& adapter_id, const std::string& at) {
  std::lock_guard<std::mutex> lock(mu_);
  QLORAD_ASSIGN_OR_RETURN(Statement s, store_->Prepare(
                                           "INSERT INTO aliases (alias, adapter_id, updated_at) VALUES (?,?,?) "
                                           "ON CONFLICT(alias) DO UPDATE SET adapter_id = excluded.adapter_id, updated_at = excluded.updated_at"));
  return s.Bind(1, alias).Bind(2, adapter_id).Bind(3, at).Run();
}

absl::StatusOr<std::optional<std::string>> DaemonStore::ResolveAlias(const std::string& alias) {
  std::lock_guard<std::mutex> lock(mu_);
  QLORAD_ASSIGN_OR_RETURN(Statement s, store_->Prepare("SELECT adapter_id FROM aliases WHERE alias = ?"));
  s.Bind(1, alias);
  QLORAD_ASSIGN_OR_RETURN(bool found, s.Step());
  if (!found) return std::optional<std::string>();
  return std::optional<std::string>(s.ColumnText(0));
}

absl::StatusOr<std::vector<std::string>> DaemonStore::AliasesOf(const std::string& adapter_id) {
  std::lock_guard<std::mutex> lock(mu_);
  QLORAD_ASSIGN_OR_RETURN(Statement s, store_->Prepare("SELECT alias FROM aliases WHERE adapter_id = ? ORDER BY alias"));
  s.Bind(1, adapter_id);
  return store::CollectRows<std::string>(s, [](const Statement& st) { return st.ColumnText(0); });
}

}  // namespace qlorad::service

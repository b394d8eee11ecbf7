#include "core/store/daemon_migrations.h"

#include "core/store/migrations.h"

namespace qlorad::store {
namespace {

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

// Interactive review (core/service/interactive_review.h): one reviewer's judgement of one
// item of an evaluation's exported sample, stored de-blinded (baseline/adapter), replaced
// until the reviewer submits; and one submission row per (evaluation, reviewer).
constexpr char kInteractiveReviewSchema[] = R"sql(
CREATE TABLE review_judgements (
  evaluation_id   TEXT NOT NULL,
  reviewer        TEXT NOT NULL,
  item_id         TEXT NOT NULL,
  baseline_rating INTEGER NOT NULL,
  adapter_rating  INTEGER NOT NULL,
  preference      TEXT NOT NULL CHECK (preference IN ('baseline','adapter','tie')),
  comment         TEXT NOT NULL DEFAULT '',
  saved_at        TEXT NOT NULL,
  PRIMARY KEY (evaluation_id, reviewer, item_id)
);
CREATE TABLE review_submissions (
  evaluation_id TEXT NOT NULL,
  reviewer      TEXT NOT NULL,
  submitted_at  TEXT NOT NULL,
  PRIMARY KEY (evaluation_id, reviewer)
);
)sql";

}  // namespace

std::vector<Migration> DaemonMigrations() {
  return {{kFirstDaemonMigrationVersion, "daemon_datasets_jobs_adapters", kDaemonSchema},
          {kFirstDaemonMigrationVersion + 1, "evaluation_reviews", kReviewSchema},
          {kFirstDaemonMigrationVersion + 2, "interactive_review", kInteractiveReviewSchema}};
}

std::vector<Migration> DaemonDatabaseMigrations() {
  std::vector<Migration> migrations = CoreMigrations();
  for (auto& m : DaemonMigrations()) migrations.push_back(std::move(m));
  return migrations;
}

}  // namespace qlorad::store

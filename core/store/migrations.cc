#include "core/store/migrations.h"

namespace qlorad::store {

std::vector<Migration> CoreMigrations() {
  return {
      {1, "audit_log", R"sql(
CREATE TABLE audit_log (
  seq          INTEGER PRIMARY KEY AUTOINCREMENT,
  at           TEXT NOT NULL,
  actor        TEXT NOT NULL,
  entity_type  TEXT NOT NULL,
  entity_id    TEXT NOT NULL,
  action       TEXT NOT NULL,
  from_state   TEXT NOT NULL DEFAULT '',
  to_state     TEXT NOT NULL DEFAULT '',
  details      TEXT NOT NULL DEFAULT '{}',
  prev_hash    TEXT NOT NULL,
  hash         TEXT NOT NULL UNIQUE
);
CREATE INDEX audit_log_entity ON audit_log(entity_type, entity_id, seq);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: UPDATE refused'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: DELETE refused'); END;
)sql"},
      {2, "adapter_lifecycle", R"sql(
CREATE TABLE adapter_versions (
  adapter_id     TEXT PRIMARY KEY,
  state          TEXT NOT NULL CHECK (state IN
                   ('trained','evaluated','approved','rejected','deployed','retired')),
  evaluation_id  TEXT NOT NULL DEFAULT '',
  risk_class     TEXT NOT NULL DEFAULT '',
  deployment     TEXT NOT NULL DEFAULT '',
  created_at     TEXT NOT NULL,
  updated_at     TEXT NOT NULL
);
CREATE TABLE approval_decisions (
  id                 INTEGER PRIMARY KEY AUTOINCREMENT,
  adapter_id         TEXT NOT NULL REFERENCES adapter_versions(adapter_id),
  decision           TEXT NOT NULL CHECK (decision IN ('approved','rejected')),
  actor              TEXT NOT NULL,
  decided_at         TEXT NOT NULL,
  note               TEXT NOT NULL DEFAULT '',
  risk_class         TEXT NOT NULL,
  documentation_ref  TEXT NOT NULL DEFAULT '',
  evaluation_id      TEXT NOT NULL
);
CREATE TRIGGER approval_decisions_no_update BEFORE UPDATE ON approval_decisions
BEGIN SELECT RAISE(ABORT, 'approval_decisions is append-only: UPDATE refused'); END;
CREATE TRIGGER approval_decisions_no_delete BEFORE DELETE ON approval_decisions
BEGIN SELECT RAISE(ABORT, 'approval_decisions is append-only: DELETE refused'); END;
)sql"},
      {3, "evaluation_records", R"sql(
CREATE TABLE evaluation_records (
  id            TEXT PRIMARY KEY,
  baseline_key  TEXT NOT NULL,
  adapter_id    TEXT NOT NULL DEFAULT '',
  created_at    TEXT NOT NULL,
  record_json   TEXT NOT NULL
);
CREATE INDEX evaluation_records_baseline ON evaluation_records(baseline_key, adapter_id, created_at);
CREATE TRIGGER evaluation_records_no_update BEFORE UPDATE ON evaluation_records
BEGIN SELECT RAISE(ABORT, 'evaluation_records are immutable: UPDATE refused (store a new record)'); END;
)sql"},
  };
}

}  // namespace qlorad::store

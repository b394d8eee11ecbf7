"""The crash-consistency checker (crash_checker.py) against hand-made SQLite databases:
a consistent store passes, and each known violation is reported under its label — so a
crash run that reports nothing means the invariants held, not that the checker is blind.
Run as `crash_consistency_test.py --self-test` (ctest crash_consistency_checker)."""

import json
import os
import sqlite3
import sys
import tempfile

import crash_checker

# The columns the checker reads, as the daemon's migrations name them.
SCHEMA = """
CREATE TABLE adapters (id TEXT PRIMARY KEY, loaded INTEGER NOT NULL DEFAULT 0, job_id TEXT NOT NULL DEFAULT '');
CREATE TABLE adapter_versions (adapter_id TEXT PRIMARY KEY, state TEXT NOT NULL);
CREATE TABLE aliases (alias TEXT PRIMARY KEY, adapter_id TEXT NOT NULL);
CREATE TABLE jobs (id TEXT PRIMARY KEY, status TEXT NOT NULL, adapter_id TEXT NOT NULL DEFAULT '');
CREATE TABLE audit_log (seq INTEGER PRIMARY KEY AUTOINCREMENT, entity_type TEXT NOT NULL, entity_id TEXT NOT NULL,
                        action TEXT NOT NULL, from_state TEXT NOT NULL DEFAULT '', to_state TEXT NOT NULL DEFAULT '',
                        details TEXT NOT NULL DEFAULT '{}');
"""


def audit(db, adapter_id, action, from_state="", to_state="", **details):
    db.execute("INSERT INTO audit_log (entity_type, entity_id, action, from_state, to_state, details) "
               "VALUES ('adapter', ?, ?, ?, ?, ?)", (adapter_id, action, from_state, to_state, json.dumps(details)))


def consistent(db):
    """x@1 (from job j1) deployed behind 'prod' in one promote entry; y@1 deleted (retired);
    z@1 deployed behind 'canary', then the alias moved to w@1 (a second promote entry)."""
    for adapter_id in ("x@1", "y@1", "z@1", "w@1"):
        audit(db, adapter_id, "register", "", "trained")
        audit(db, adapter_id, "evaluate", "trained", "evaluated")
    db.execute("INSERT INTO jobs VALUES ('j1', 'succeeded', 'x@1')")
    db.execute("INSERT INTO adapters VALUES ('x@1', 1, 'j1'), ('z@1', 1, ''), ('w@1', 1, '')")
    for adapter_id, alias in (("x@1", "prod"), ("z@1", "canary"), ("w@1", "canary")):
        audit(db, adapter_id, "approve", "evaluated", "approved")
        audit(db, adapter_id, "promote_deploy", "approved", "deployed", alias=alias)
    db.execute("INSERT INTO adapter_versions VALUES ('x@1', 'deployed'), ('y@1', 'retired'), ('z@1', 'deployed'), "
               "('w@1', 'deployed')")
    audit(db, "y@1", "delete", "evaluated", "retired")
    db.execute("INSERT INTO aliases VALUES ('prod', 'x@1'), ('canary', 'w@1')")


# name -> (SQL applied to the consistent store, the labels that must be reported: all, only)
BROKEN = {
    "alias to an undeployed adapter (state changed without entry)": (
        "UPDATE adapter_versions SET state = 'approved' WHERE adapter_id = 'x@1'", {"(a)", "(c1)"}),
    "alias to a missing adapter": ("INSERT INTO aliases VALUES ('ghost', 'nope@1')", {"(a)", "(c4)"}),
    "state without its audit entry": ("UPDATE adapter_versions SET state = 'retired' WHERE adapter_id = 'z@1'", {"(c1)"}),
    "audit entry without its transition": (
        "INSERT INTO audit_log (entity_type, entity_id, action, from_state, to_state) "
        "VALUES ('adapter', 'z@1', 'retire', 'deployed', 'retired')", {"(c1)"}),
    "entry that does not follow from the previous state": (
        "UPDATE audit_log SET from_state = 'trained' WHERE entity_id = 'x@1' AND action = 'approve'", {"(c1)"}),
    "lifecycle entries without a lifecycle record": (
        "INSERT INTO audit_log (entity_type, entity_id, action, from_state, to_state) "
        "VALUES ('adapter', 'lost@1', 'register', '', 'trained')", {"(c1)"}),
    "adapter row without registration (today's crash inside an import)": (
        "INSERT INTO adapters VALUES ('half@1', 0, '')", {"(c2)"}),
    "row deleted without its entry (today's crash inside a delete)": ("DELETE FROM adapters WHERE id = 'z@1'", {"(c2)"}),
    "delete entry but the row is still there": (
        "INSERT INTO audit_log (entity_type, entity_id, action) VALUES ('adapter', 'z@1', 'delete')", {"(c2)"}),
    "deployed by a lifecycle entry plus a separate promote entry (today's promote)": (
        "UPDATE audit_log SET action = 'deploy', details = '{\"deployment\": \"canary\"}' "
        "WHERE entity_id = 'w@1' AND action = 'promote_deploy'; "
        "INSERT INTO audit_log (entity_type, entity_id, action, details) "
        "VALUES ('adapter', 'w@1', 'promote', '{\"alias\": \"canary\"}')", {"(c3)"}),
    "deployed with no promote entry (today's crash after Deploy)": (
        "UPDATE audit_log SET action = 'deploy', details = '{}' WHERE entity_id = 'z@1' AND action = 'promote_deploy'",
        {"(c3)"}),
    "alias moved without its promote entry (today's crash after SetAlias)": (
        "UPDATE aliases SET adapter_id = 'z@1' WHERE alias = 'canary'", {"(c4)"}),
    "promote entry for an alias that does not exist": ("DELETE FROM aliases WHERE alias = 'canary'", {"(c4)"}),
    "adapter of a job that did not finish (today's crash inside job completion)": (
        "UPDATE jobs SET status = 'queued', adapter_id = ''", {"(d)"}),
    "job that succeeded with an unregistered adapter": ("INSERT INTO jobs VALUES ('j2', 'succeeded', 'never@1')", {"(d)"}),
}


def labels(found):
    return {v.split(" ", 1)[0] for v in found}


def build(path, sql=None):
    db = sqlite3.connect(path)
    db.executescript("DROP TABLE IF EXISTS audit_log; DROP TABLE IF EXISTS adapters; DROP TABLE IF EXISTS "
                     "adapter_versions; DROP TABLE IF EXISTS aliases; DROP TABLE IF EXISTS jobs;" + SCHEMA)
    consistent(db)
    if sql:
        # the audit_log of a real store refuses UPDATE/DELETE; this hand-made one simulates tampering or a lost write
        db.executescript(sql)
    db.commit()
    db.close()


def main():
    directory = tempfile.mkdtemp(prefix="qlorad-crash-checker-")
    path = os.path.join(directory, "store.db")
    failures = []
    probe_calls = []

    def loadable(adapter_id, stored_loaded):
        probe_calls.append(adapter_id)
        assert stored_loaded, adapter_id
        return True, "loaded"

    build(path)
    found = crash_checker.check(crash_checker.read_snapshot(path), loadable)
    print("consistent store: %s" % (found or "no violations"))
    if found:
        failures.append("consistent store reported %s" % found)
    if sorted(probe_calls) != ["w@1", "x@1", "z@1"]:
        failures.append("(b) probed %s, want the deployed adapters w@1, x@1, z@1" % sorted(probe_calls))
    found = crash_checker.check(crash_checker.read_snapshot(path), lambda a, _: (a != "x@1", "LoadAdapter: NOT_FOUND"))
    print("deployed but not loadable: %s" % found)
    if not any(v.startswith("(b) deployed x@1") for v in found) or len(found) != 1:
        failures.append("unloadable x@1: got %s" % found)
    for name, (sql, want) in BROKEN.items():
        build(path, sql)
        found = crash_checker.check(crash_checker.read_snapshot(path), loadable)
        print("%s:\n    %s" % (name, "\n    ".join(found) or "no violations"))
        if labels(found) != want:
            failures.append("%s: want violations %s, got %s" % (name, sorted(want), found))
    for f in failures:
        print("FAIL: " + f)
    print("checker self-test: %d cases, %d failures" % (len(BROKEN) + 2, len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""The store invariants of the crash-consistency test (crash_consistency_test.py), read
from the daemon's SQLite file (read-only, one read transaction = one consistent snapshot).

  (a) alias:   every alias names an existing adapter whose lifecycle state is 'deployed'.
  (b) loaded:  every deployed adapter is loaded (adapters.loaded = 1 and the daemon says
               so over gRPC) or loadable (LoadAdapter succeeds) — `probe` answers that.
  (c) audit:   audit entries match state transitions one to one:
       c1 each adapter's entries with a to_state form a chain (the first '' -> trained,
          each from_state = the previous to_state) ending in adapter_versions.state; no
          such entry for an adapter the lifecycle does not know;
       c2 an adapter row exists only with its registration (a lifecycle row), and a
          registered adapter without its row has exactly one 'delete' entry (and a
          present one none);
       c3 a promote is ONE entry: the entry that moves an adapter to 'deployed' is itself
          the promote record (action promote*, naming the alias in details.alias);
       c4 every alias's target is the adapter named by the latest promote record of that
          alias, and no promote record names an alias that does not exist.
  (d) jobs:    an adapter made by a job is that job's adapter and the job succeeded; a
               succeeded job names an adapter that was registered.
Each violation is a string starting with its label, e.g. "(a) alias prod -> x@1 ...".
"""

import json
import sqlite3

LABELS = ("(a)", "(b)", "(c)", "(d)")


def read_snapshot(db_path):
    """The tables the invariants need, from one read transaction."""
    db = sqlite3.connect("file:%s?mode=ro" % db_path, uri=True, isolation_level=None, timeout=30)
    try:
        db.execute("BEGIN")
        snap = {
            "adapters": {r[0]: {"loaded": bool(r[1]), "job_id": r[2]}
                         for r in db.execute("SELECT id, loaded, job_id FROM adapters")},
            "versions": dict(db.execute("SELECT adapter_id, state FROM adapter_versions")),
            "aliases": dict(db.execute("SELECT alias, adapter_id FROM aliases")),
            "jobs": {r[0]: {"status": r[1], "adapter_id": r[2]}
                     for r in db.execute("SELECT id, status, adapter_id FROM jobs")},
            "audit": [{"seq": r[0], "id": r[1], "action": r[2], "from": r[3], "to": r[4],
                       "details": json.loads(r[5] or "{}")}
                      for r in db.execute("SELECT seq, entity_id, action, from_state, to_state, details FROM audit_log "
                                          "WHERE entity_type = 'adapter' ORDER BY seq")],
        }
        db.execute("COMMIT")
    finally:
        db.close()
    return snap


def is_promote_record(entry):
    return entry["action"].startswith("promote") and isinstance(entry["details"].get("alias"), str)


def check(snap, probe=None):
    """Violations (strings) of (a)-(d) in `snap`. (b) asks probe(adapter_id, stored loaded
    flag) -> (ok, how) about each deployed adapter; probe None skips (b)."""
    out = []
    adapters, versions, aliases, audit = snap["adapters"], snap["versions"], snap["aliases"], snap["audit"]
    by_adapter = {}
    for e in audit:
        by_adapter.setdefault(e["id"], []).append(e)

    for alias, target in sorted(aliases.items()):  # (a)
        if target not in adapters:
            out.append("(a) alias %s -> %s: no such adapter" % (alias, target))
        elif versions.get(target) != "deployed":
            out.append("(a) alias %s -> %s: state is %r, not 'deployed'" % (alias, target, versions.get(target)))

    for adapter_id in sorted(a for a in adapters if versions.get(a) == "deployed"):  # (b)
        if probe is None:
            continue
        ok, how = probe(adapter_id, adapters[adapter_id]["loaded"])
        if not ok:
            out.append("(b) deployed %s is neither loaded nor loadable: %s" % (adapter_id, how))

    for adapter_id in sorted(set(adapters) | set(versions) | set(by_adapter)):  # (c)
        out += check_adapter_history(adapter_id, by_adapter.get(adapter_id, []), adapter_id in adapters,
                                     versions.get(adapter_id))
    out += check_promote_records(aliases, audit)
    out += check_jobs(snap)
    return out


def check_adapter_history(adapter_id, entries, has_row, state):
    out = []
    chain = [e for e in entries if e["to"]]
    if state is None:
        if chain:
            out.append("(c1) %s: %d state entries (%s) but no lifecycle record" %
                       (adapter_id, len(chain), ", ".join(e["action"] for e in chain)))
        if has_row:
            out.append("(c2) %s: adapter row without its registration (no lifecycle record, no 'register' entry)" %
                       adapter_id)
        return out
    previous = ""
    for e in chain:
        if e["from"] != previous:
            out.append("(c1) %s: entry #%d %s says %r -> %r but the state was %r" %
                       (adapter_id, e["seq"], e["action"], e["from"], e["to"], previous))
        previous = e["to"]
    if not chain or chain[0]["to"] != "trained":
        out.append("(c1) %s: history does not start with its registration ('' -> trained)" % adapter_id)
    if previous != state:
        out.append("(c1) %s: state is %r but the audit chain ends in %r" % (adapter_id, state, previous))
    deletes = [e for e in entries if e["action"] == "delete"]
    if has_row and deletes:
        out.append("(c2) %s: %d 'delete' entries but the adapter row is still there" % (adapter_id, len(deletes)))
    if not has_row and len(deletes) != 1:
        out.append("(c2) %s: the adapter row is gone with %d 'delete' entries (want exactly 1)" %
                   (adapter_id, len(deletes)))
    for e in chain:
        if e["to"] == "deployed" and e["from"] != "deployed" and not is_promote_record(e):
            follow = [p for p in entries if p["seq"] > e["seq"] and is_promote_record(p)]
            out.append("(c3) %s: moved to 'deployed' by entry #%d %r, not by a promote entry (%s)" %
                       (adapter_id, e["seq"], e["action"],
                        "a separate promote entry #%d follows: 2 entries for 1 promote" % follow[0]["seq"]
                        if follow else "and no promote entry at all"))
    return out


def check_promote_records(aliases, audit):
    out, latest = [], {}
    for e in audit:
        if is_promote_record(e):
            latest[e["details"]["alias"]] = e
    for alias, target in sorted(aliases.items()):
        record = latest.get(alias)
        if record is None:
            out.append("(c4) alias %s -> %s: no promote entry for this alias" % (alias, target))
        elif record["id"] != target:
            out.append("(c4) alias %s -> %s: its latest promote entry #%d names %s" %
                       (alias, target, record["seq"], record["id"]))
    for alias, record in sorted(latest.items()):
        if alias not in aliases:
            out.append("(c4) promote entry #%d names alias %s, which does not exist" % (record["seq"], alias))
    return out


def check_jobs(snap):
    out = []
    for adapter_id, row in sorted(snap["adapters"].items()):
        job = snap["jobs"].get(row["job_id"]) if row["job_id"] else None
        if row["job_id"] and job is None:
            out.append("(d) %s: made by job %s, which does not exist" % (adapter_id, row["job_id"]))
        elif job is not None and (job["status"] != "succeeded" or job["adapter_id"] != adapter_id):
            out.append("(d) %s: made by job %s, which is %s with adapter %r" %
                       (adapter_id, row["job_id"], job["status"], job["adapter_id"]))
    for job_id, job in sorted(snap["jobs"].items()):
        if job["status"] == "succeeded" and job["adapter_id"] not in snap["versions"]:
            out.append("(d) job %s succeeded with adapter %r, which was never registered" % (job_id, job["adapter_id"]))
    return out

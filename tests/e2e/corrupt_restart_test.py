"""A corrupt adapter at restart recovery (issue 21, fault injection).

Four PEFT adapters are imported (a, b, c loaded on the engine, d not). The daemon is stopped,
b's adapter_model.safetensors gets a garbage header, and the daemon restarts: it comes up,
b is listed with a load_error naming its file (ListAdapters, GetAdapter, qloractl's table and
a WARNING line in the log), a and c are loaded and generate exactly what they generated
before, and nothing else changed: every other file's SHA-256 and every database row are as
before, except b's loaded flag (cleared, audited once as reload_failed with the reason).
A second restart after truncating d (not loaded) reports d too and changes nothing at all.
Restoring b's bytes, LoadAdapter(b) clears its load_error and b generates as before."""

import os
import signal
import sys

import daemon_harness as h
import fault_helpers as fh
from crash_consistency_test import write_peft

PROMPT = "The service was"


def main():
    work = h.tempdir("qlorad-corrupt-")
    model = h.make_model(os.path.join(work, "model"))
    stubs = h.python_stubs(os.path.join(work, "stubs"))
    root = os.path.join(work, "import-root")
    for seed, name in enumerate("abcd", 1):
        write_peft(os.path.join(root, name), model, seed)
    state = os.path.join(work, "state")
    failures = []

    def check(cond, what):
        print("  %s %s" % ("ok  " if cond else "FAIL", what), flush=True)
        if not cond:
            failures.append(what)

    def start():
        d = h.Daemon(work, model, tokens=False, state_dir=state, extra_args=["--import-root", root]).start()
        return d, fh.Client(stubs, d)

    def stop(d, c):
        c.close()
        check(d.stop(signal.SIGTERM) == 0, "the daemon stops cleanly")

    def adapters(c):
        return {a.name: a for a in c.adapters.ListAdapters(c.ad.ListAdaptersRequest(page_size=100), timeout=30).adapters}

    d, c = start()
    try:
        ids, texts = {}, {}
        for name in "abcd":
            ids[name] = c.adapters.ImportAdapter(c.ad.ImportAdapterRequest(name=name, path=os.path.join(root, name)), timeout=120).adapter_id
        for name in "abc":
            c.adapters.LoadAdapter(c.ad.LoadAdapterRequest(adapter=ids[name]), timeout=120)
            texts[name] = c.generate(ids[name], PROMPT)
        files = {n: os.path.join(a.path, "adapter_model.safetensors") for n, a in adapters(c).items()}
        stop(d, c)
        before = fh.Snapshot(state)
        with open(files["b"], "rb") as f:
            original_b = f.read()

        print("restart 1: b's header overwritten with garbage")
        with open(files["b"], "r+b") as f:
            f.write(b"\xff" * 8 + b"this is not a safetensors header")
        d, c = start()
        listed = adapters(c)
        b = listed["b"]
        print("    b: loaded=%s load_error=%r" % (b.loaded, b.load_error))
        check(not b.loaded and files["b"] in b.load_error, "b is listed unloadable, the reason names its file")
        got = c.adapters.GetAdapter(c.ad.AdapterRef(adapter=ids["b"]), timeout=30)
        check(got.load_error == b.load_error, "GetAdapter reports the same reason")
        with open(d.log_path) as f:
            log = f.read()
        check("WARNING: adapter %s is unloadable" % ids["b"] in log and files["b"] in log, "the log names b and its file")
        table = d.ctl("adapters", "list").stdout
        check(any(ids["b"] in line and "unloadable" in line for line in table.splitlines()), "qloractl's table says unloadable")
        for name in "ac":
            check(listed[name].loaded and not listed[name].load_error, "%s is loaded" % name)
            check(c.generate(ids[name], PROMPT) == texts[name], "%s generates what it generated before" % name)
        check(not listed["d"].loaded and not listed["d"].load_error, "d (intact, not loaded) is fine")
        e = fh.expect_rpc_error(c.grpc, lambda: c.adapters.LoadAdapter(c.ad.LoadAdapterRequest(adapter=ids["b"]),
                                                                         timeout=60),
                                ["FAILED_PRECONDITION", "INVALID_ARGUMENT", "DATA_LOSS", "INTERNAL"])
        check(files["b"] in e.details(), "LoadAdapter(b) fails naming the file: %s %s" % (e.code().name, e.details()))
        check(d.proc.poll() is None, "the daemon serves on")
        stop(d, c)

        after = fh.Snapshot(state)
        b_row = [r for r in before.rows["adapters"] if r[0] == ids["b"]]
        problems = before.check_kept_by(after, changed_files={os.path.relpath(files["b"], state)},
                                        changed_rows={"adapters": lambda row: row in b_row})
        for p in problems:
            check(False, p)
        check(before.new_files(after) == [], "no new files: %s" % before.new_files(after))
        for table in after.rows:
            if table not in ("adapters", "audit_log"):
                check(after.rows[table] == before.rows[table], "table %s unchanged" % table)
        audit = before.new_rows(after, "audit_log")
        check(len(audit) == 1 and "reload_failed" in repr(audit[0]) and ids["b"] in repr(audit[0]),
              "exactly one new audit entry, b's reload_failed: %s" % audit)
        check(len(after.rows["adapters"]) == len(before.rows["adapters"]), "every adapter is still listed")

        print("restart 2: d (not loaded) truncated as well")
        with open(files["d"], "r+b") as f:
            f.truncate(os.path.getsize(files["d"]) // 2)
        before2 = after
        d, c = start()
        listed = adapters(c)
        check("truncated" in listed["d"].load_error and files["d"] in listed["d"].load_error,
              "d is listed unloadable: %r" % listed["d"].load_error)
        check(listed["b"].load_error != "", "b is still reported")
        for name in "ac":
            check(listed[name].loaded and c.generate(ids[name], PROMPT) == texts[name], "%s serves as before" % name)
        stop(d, c)
        after2 = fh.Snapshot(state)
        check(after2.rows == before2.rows, "restart 2 changed no database row")
        check(before2.check_kept_by(after2, changed_files={os.path.relpath(files["d"], state)}) == [],
              "restart 2 changed no other file")

        print("b's bytes restored: LoadAdapter(b) works again")
        with open(files["b"], "wb") as f:
            f.write(original_b)
        d, c = start()
        loaded = c.adapters.LoadAdapter(c.ad.LoadAdapterRequest(adapter=ids["b"]), timeout=120)
        check(loaded.loaded and loaded.load_error == "", "b loads and its load_error is cleared")
        check(c.generate(ids["b"], PROMPT) == texts["b"], "b generates what it generated before")
        stop(d, c)
    finally:
        if d.proc is not None and d.proc.poll() is None:
            c.close()
            d.stop(signal.SIGTERM)
    return fh.finish(failures, work)


if __name__ == "__main__":
    sys.exit(main())

"""SQLite busy / locked (issue 21, fault injection): another process holds an exclusive write
lock on the daemon's database (python sqlite3, BEGIN EXCLUSIVE) while the daemon writes.

The daemon runs with --db-busy-timeout-ms 400 --db-busy-attempts 3: a write waits at most
about 1.2 s for the lock. Held for 0.6 s (within the bound) a dataset upload and a job
submission wait and succeed. Held for 5 s (past the bound) both fail with UNAVAILABLE naming
the database file, well before the lock ends; meanwhile reads and generation go on; nothing
of the refused writes is visible (no dataset row or directory, no job), every file and row
stored before is unchanged, and once the lock is released the same calls succeed."""

import os
import signal
import sqlite3
import sys
import threading
import time

import daemon_harness as h
import fault_helpers as fh

TIMEOUT_MS, ATTEMPTS = 400, 3
BOUND = TIMEOUT_MS * ATTEMPTS / 1000.0


class Locker:
    """Holds BEGIN EXCLUSIVE on `db` from its own connection for `seconds`."""

    def __init__(self, db, seconds):
        self.db, self.seconds = db, seconds
        self.held = threading.Event()
        self.released_at = None
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        conn = sqlite3.connect(self.db, isolation_level=None, timeout=30)
        conn.execute("BEGIN EXCLUSIVE")
        self.held.set()
        time.sleep(self.seconds)
        conn.execute("ROLLBACK")
        self.released_at = time.time()
        conn.close()

    def __enter__(self):
        self.thread.start()
        self.held.wait(30)
        return self

    def __exit__(self, *exc):
        self.thread.join()


def main():
    work = h.tempdir("qlorad-busy-")
    model = h.make_model(os.path.join(work, "model"))
    stubs = h.python_stubs(os.path.join(work, "stubs"))
    data = h.write_sentiment(os.path.join(work, "reviews.jsonl"), limit=60)
    d = h.Daemon(work, model, tokens=False,
                 extra_args=["--db-busy-timeout-ms", str(TIMEOUT_MS), "--db-busy-attempts", str(ATTEMPTS)]).start()
    c = fh.Client(stubs, d)
    db = os.path.join(d.state_dir, "qlorad.db")
    failures = []

    def check(cond, what):
        print("  %s %s" % ("ok  " if cond else "FAIL", what), flush=True)
        if not cond:
            failures.append(what)

    try:
        c.upload("reviews", data)
        base_text = c.generate()

        short_job = []
        print("lock held 0.6 s (bound %.1f s): the writes wait and succeed" % BOUND)
        for what, call in (("upload", lambda: c.upload("short", data)),
                           ("submit", lambda: short_job.append(c.submit("reviews", "short", r=4).job_id))):
            with Locker(db, 0.6) as lock:
                started = time.time()
                call()
                ended = time.time()
            check(lock.released_at is not None and ended >= lock.released_at - 0.05,
                  "%s finished %.2f s after the lock was taken, after its release" % (what, ended - started))
        check("short" in c.dataset_ids(), "the dataset is listed")
        check(c.wait_job(short_job[0]).status == "succeeded", "the job submitted under the lock trains")

        before = fh.Snapshot(d.state_dir)
        jobs_before = {j.job_id for j in c.jobs.ListJobs(c.jb.ListJobsRequest(page_size=100), timeout=30).jobs}
        print("lock held 5 s: the writes fail UNAVAILABLE within the bound")
        with Locker(db, 5.0) as lock:
            for what, call in (("upload", lambda: c.upload("long", data)),
                               ("submit", lambda: c.submit("reviews", "long", r=4))):
                started = time.time()
                e = fh.expect_rpc_error(c.grpc, call, ["UNAVAILABLE", "ABORTED"])
                took = time.time() - started
                print("    %s: %s %s (%.2f s)" % (what, e.code().name, e.details(), took))
                check(db in e.details() and "locked" in e.details(), "%s: the message names the database" % what)
                check(BOUND * 0.8 <= took <= BOUND + 1.5, "%s gave up after %.2f s (bound %.1f s)" % (what, took, BOUND))
            check(lock.released_at is None, "both failed while the lock was still held")
            # reads and serving go on while the lock is held
            check("reviews" in c.dataset_ids(), "ListDatasets answers while the lock is held")
            check(c.generate() == base_text, "generation answers while the lock is held")
        check(d.proc.poll() is None, "the daemon is still running")
        after = fh.Snapshot(d.state_dir)
        for p in before.check_kept_by(after):
            check(False, p)
        check(after.rows["datasets"] == before.rows["datasets"], "no dataset row for the refused upload")
        check(after.rows["jobs"] == before.rows["jobs"], "no job row for the refused submission")
        check(not os.path.exists(os.path.join(d.state_dir, "datasets", "long")), "no dataset directory for the refused upload")
        check(before.new_files(after) == [], "no new files: %s" % before.new_files(after))
        check(fh.leftovers(d.state_dir) == [], "no temp files: %s" % fh.leftovers(d.state_dir))
        jobs_after = {j.job_id for j in c.jobs.ListJobs(c.jb.ListJobsRequest(page_size=100), timeout=30).jobs}
        check(jobs_after == jobs_before, "ListJobs unchanged")

        print("after the release the same calls succeed")
        c.upload("long", data)
        check("long" in c.dataset_ids(), "the dataset is listed")
        check(c.wait_job(c.submit("reviews", "long", r=4).job_id).status == "succeeded", "the job is submitted and trains")
    finally:
        c.close()
        if d.proc is not None and d.proc.poll() is None:
            d.stop(signal.SIGTERM)
    return fh.finish(failures, work)


if __name__ == "__main__":
    sys.exit(main())

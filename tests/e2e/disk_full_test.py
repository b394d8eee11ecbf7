"""Disk full (issue 21, fault injection): the daemon's state directory on small tmpfs volumes
that the test fills, so that (a) a dataset upload — the ingestion's staging files, and
separately the uploaded file itself —, (b) a training checkpoint, (c) the adapter saved at the
end of training and (d) a merged GGUF export each run out of space.

Each must fail with RESOURCE_EXHAUSTED naming the path it could not write; the daemon keeps
serving (ListAdapters and a generation succeed); nothing half-written is visible (no dataset
or adapter row, no temp or staging file, no adapter directory of the failed job, only
complete checkpoints); every file and database row stored before is unchanged (SHA-256 of
each file, each row). After the ballast is removed, the same operation succeeds.

Volumes: <state> is a 128 MiB tmpfs (the database, uploads/, exports), <state>/datasets a
8 MiB one and <state>/jobs a 24 MiB one, so a job can fill jobs/ without starving the database.
Mounting needs root; otherwise the test re-runs itself under `unshare --user
--map-root-user --mount`, and fails if that is not allowed either."""

import os
import random
import shutil
import signal
import sys
import time

import daemon_harness as h
import fault_helpers as fh

MiB = 1 << 20


def check(cond, what):
    if not cond:
        raise AssertionError(what)


class DiskFull:
    def __init__(self, work):
        self.work = work
        self.model = h.make_model(os.path.join(work, "model"))
        self.stubs = h.python_stubs(os.path.join(work, "stubs"))
        self.state = os.path.join(work, "state")
        self.data = h.write_sentiment(os.path.join(work, "reviews.jsonl"), limit=60)
        self.mounts = []
        self.daemon = None
        self.c = None
        self.failures = []

    def mount(self):
        for directory, size in ((self.state, 128 * MiB), (os.path.join(self.state, "datasets"), 8 * MiB),
                                (os.path.join(self.state, "jobs"), 24 * MiB)):
            fh.mount_tmpfs(directory, size)
            self.mounts.append(directory)

    def unmount(self):
        for directory in reversed(self.mounts):
            fh.umount(directory)

    def start(self):
        self.daemon = h.Daemon(self.work, self.model, tokens=False, state_dir=self.state).start()
        self.c = fh.Client(self.stubs, self.daemon)

    def stop(self):
        if self.c:
            self.c.close()
        if self.daemon and self.daemon.proc and self.daemon.proc.poll() is None:
            self.daemon.stop(signal.SIGTERM)

    # --- the checks after every failure ----------------------------------------------------

    def after_failure(self, name, before, error, path_part):
        """The failure was clear, the daemon serves, nothing half-written, nothing lost."""
        details = error.details()
        print("  %s failed: %s %s" % (name, error.code().name, details), flush=True)
        check(path_part in details and self.state in details,
              "%s: the message does not name the path (%s under %s): %s" % (name, path_part, self.state, details))
        check("No space left on device" in details, "%s: the message does not say the volume is full: %s" % (name, details))
        self.c.adapter_ids()
        self.c.generate()  # serving goes on
        check(self.daemon.proc.poll() is None, "%s: the daemon exited" % name)
        after = fh.Snapshot(self.state)
        problems = before.check_kept_by(after)
        problems += ["left behind: %s" % p for p in fh.leftovers(self.state)]
        check(after.rows["datasets"] == before.rows["datasets"], "%s: the datasets table changed" % name)
        check(after.rows["adapters"] == before.rows["adapters"], "%s: the adapters table changed" % name)
        return after, problems

    def report(self, name, problems):
        for p in problems:
            print("  FAIL %s: %s" % (name, p), flush=True)
        self.failures += ["%s: %s" % (name, p) for p in problems]

    # --- the scenarios ---------------------------------------------------------------------

    def train_ok(self, name):
        job = self.c.wait_job(self.c.submit("reviews", name).job_id)
        check(job.status == "succeeded", "job %s %s: %s" % (name, job.status, job.error))
        return job

    def upload_staging(self):
        """(a) the ingestion's staging files do not fit in datasets/."""
        name = "a: dataset upload (ingestion)"
        datasets = os.path.join(self.state, "datasets")
        fh.leave_free(datasets, 0)
        before = fh.Snapshot(self.state)
        started = time.time()
        e = fh.expect_rpc_error(self.c.grpc, lambda: self.c.upload("second", self.data), ["RESOURCE_EXHAUSTED"])
        print("  (%.2f s)" % (time.time() - started))
        _, problems = self.after_failure(name, before, e, "datasets/.staging-second")
        problems += ["listed: second"] if "second" in self.c.dataset_ids() else []
        fh.release(datasets)
        self.c.upload("second", self.data)
        problems += [] if "second" in self.c.dataset_ids() else ["not listed after the retry"]
        self.report(name, problems)

    def upload_file(self):
        """(a) the uploaded file itself does not fit in uploads/ (the state volume)."""
        name = "a: dataset upload (received file)"
        big = os.path.join(self.work, "big.jsonl")
        rng = random.Random(5)
        words = ["good", "bad", "food", "service", "slow", "great", "awful", "fine", "movie", "plot", "actor", "sound"]
        with open(big, "w") as f:
            for i in range(6000):
                label = "positive" if i % 2 else "negative"
                text = " ".join(rng.choice(words) for _ in range(40)) + " %d" % i
                f.write('{"text": "%s", "label": "%s"}\n' % (text, label))
        size = os.path.getsize(big)
        fh.leave_free(self.state, size // 2)
        before = fh.Snapshot(self.state)
        e = fh.expect_rpc_error(self.c.grpc, lambda: self.c.upload("big", big), ["RESOURCE_EXHAUSTED"])
        _, problems = self.after_failure(name, before, e, "uploads/upload-")
        problems += ["listed: big"] if "big" in self.c.dataset_ids() else []
        fh.release(self.state)
        self.c.upload("big", big, timeout=300)
        problems += [] if "big" in self.c.dataset_ids() else ["not listed after the retry"]
        self.report(name, problems)

    def job_fault(self, name, adapter, leave, path_part):
        """(b)/(c): a job on a jobs/ volume with `leave` bytes free fails naming path_part."""
        jobs = os.path.join(self.state, "jobs")
        fh.leave_free(jobs, leave)
        before = fh.Snapshot(self.state)
        job = self.c.wait_job(self.c.submit("reviews", adapter).job_id)
        print("  %s: job %s %s: %s" % (name, job.job_id, job.status, job.error), flush=True)
        problems = []
        if job.status != "failed" or "RESOURCE_EXHAUSTED" not in job.error or path_part not in job.error \
                or self.state not in job.error:
            problems.append("job %s %s, error %r: wanted failed with RESOURCE_EXHAUSTED naming %s"
                            % (job.job_id, job.status, job.error, path_part))

        class Error:  # the job's error in after_failure's terms
            def code(self):
                return type("Code", (), {"name": "RESOURCE_EXHAUSTED"})

            def details(self):
                return job.error
        after, more = self.after_failure(name, before, Error(), path_part)
        problems += more
        job_dir = os.path.join(self.state, "jobs", job.job_id)
        for rel in before.new_files(after):
            if not rel.startswith(os.path.join("jobs", job.job_id, "checkpoints", "checkpoint-")):
                problems.append("new file after the failure: %s" % rel)
        if os.path.isdir(job_dir):
            problems += ["adapter directory left: %s" % p for p in os.listdir(job_dir) if p.startswith("adapter")]
        problems += ["%s: not visible in ListAdapters" % a for a in self.c.adapter_ids() if a.startswith(adapter + "@")]
        fh.release(jobs)
        retry = self.c.wait_job(self.c.submit("reviews", adapter).job_id)
        if retry.status != "succeeded":
            problems.append("retry after freeing space: %s %s" % (retry.status, retry.error))
        elif retry.adapter_id not in self.c.adapter_ids():
            problems.append("retry: %s not listed" % retry.adapter_id)
        self.report(name, problems)

    def export_merged(self):
        """(d) a merged GGUF export does not fit in uploads/ (the state volume)."""
        name = "d: export (merged GGUF)"
        req = self.c.ad.ExportAdapterRequest(adapter="calib@1", format="gguf", merge=True)
        fh.leave_free(self.state, 4 * MiB)
        before = fh.Snapshot(self.state)
        e = fh.expect_rpc_error(self.c.grpc, lambda: list(self.c.adapters.ExportAdapter(req, timeout=300)),
                                ["RESOURCE_EXHAUSTED"])
        _, problems = self.after_failure(name, before, e, "uploads/export-")
        fh.release(self.state)
        chunks = list(self.c.adapters.ExportAdapter(req, timeout=300))
        files = {}
        for chunk in chunks:
            files[chunk.name] = files.get(chunk.name, 0) + len(chunk.data)
        gguf = [n for n in files if n.endswith(".gguf")]
        if not gguf or chunks[0].data[:4] != b"GGUF" or files[gguf[0]] < 30 * MiB:
            problems.append("retry: no complete GGUF came back (%s)" % files)
        problems += ["left behind after the retry: %s" % p for p in fh.leftovers(self.state)]
        self.report(name, problems)

    def run(self):
        self.mount()
        self.start()
        self.c.upload("reviews", self.data)
        calib = self.train_ok("calib")  # stored before the faults; measures what a job writes
        job_dir = os.path.join(self.state, "jobs", calib.job_id)
        ckpts = sorted(os.listdir(os.path.join(job_dir, "checkpoints")))
        checkpoint = fh.dir_bytes(os.path.join(job_dir, "checkpoints", ckpts[-1]))
        adapter = fh.dir_bytes(os.path.join(job_dir, "adapter"))
        print("a job writes checkpoints %s of %d bytes, an adapter of %d bytes" % (ckpts, checkpoint, adapter), flush=True)
        check(len(ckpts) == 1, "calibration: expected only the final checkpoint, got %s" % ckpts)
        started = time.time()
        self.upload_staging()
        self.upload_file()
        # (b) not even one checkpoint fits; (c) the final checkpoint fits, the adapter does not.
        self.job_fault("b: training checkpoint", "ckpt", checkpoint // 2, "/checkpoints/.tmp-checkpoint-")
        self.job_fault("c: adapter save", "save", checkpoint + adapter // 2, "/adapter.partial/")
        self.export_merged()
        print("scenarios in %.1f s" % (time.time() - started))


def main():
    fh.in_mount_namespace_or_reexec()
    work = h.tempdir("qlorad-diskfull-")
    t = DiskFull(work)
    try:
        t.run()
    finally:
        t.stop()
        t.unmount()
    if t.failures:
        print("%d problem(s); work directory kept: %s (daemon log %s)" % (len(t.failures), work, t.daemon.log_path))
        return 1
    shutil.rmtree(work, ignore_errors=True)
    print("disk full: every operation failed cleanly and succeeded after freeing space")
    return 0


if __name__ == "__main__":
    sys.exit(main())

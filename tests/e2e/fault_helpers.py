"""Shared pieces of the fault-injection e2e tests (fault_*): what the state directory holds
(SHA-256 of every file, every database row), what a failed operation may not leave behind,
small tmpfs volumes to fill, and the gRPC calls the tests make. Nothing here is faked: the
tests run the real daemon on real files."""

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
import time

DB_FILES = ("qlorad.db", "qlorad.db-wal", "qlorad.db-shm")
BALLAST = ".fault-ballast"  # the file that fills a volume (never a name the daemon uses)


# --- what is stored ----------------------------------------------------------------------

def file_hashes(state_dir):
    """{relative path: sha256} of every regular file under state_dir except the database and
    the ballast (the database is compared row by row, see db_rows)."""
    out = {}
    for root, _, files in os.walk(state_dir):
        for name in files:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, state_dir)
            if rel in DB_FILES or name == BALLAST or not os.path.isfile(path):
                continue
            with open(path, "rb") as f:
                out[rel] = hashlib.sha256(f.read()).hexdigest()
    return out


def db_rows(state_dir):
    """{table: sorted list of rows} of the daemon's database, read through a read-only connection."""
    uri = "file:%s?mode=ro" % os.path.join(state_dir, "qlorad.db")
    with sqlite3.connect(uri, uri=True, timeout=30) as c:
        tables = [r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        return {t: sorted(c.execute("SELECT * FROM \"%s\"" % t).fetchall(), key=repr) for t in tables}


class Snapshot:
    """Files and rows of a state directory at one moment."""

    def __init__(self, state_dir):
        self.files = file_hashes(state_dir)
        self.rows = db_rows(state_dir)

    def check_kept_by(self, later, changed_files=(), changed_rows=None):
        """Problems if `later` lost or changed anything this snapshot holds. changed_files:
        relative paths allowed to differ; changed_rows: {table: predicate(row)} for rows of
        this snapshot allowed to change."""
        problems = []
        for rel, digest in sorted(self.files.items()):
            if rel in changed_files:
                continue
            if rel not in later.files:
                problems.append("file lost: %s" % rel)
            elif later.files[rel] != digest:
                problems.append("file changed: %s" % rel)
        for table, rows in self.rows.items():
            after = set(later.rows.get(table, []))
            allowed = (changed_rows or {}).get(table, lambda row: False)
            for row in rows:
                if row not in after and not allowed(row):
                    problems.append("row lost or changed in %s: %r" % (table, row))
        return problems

    def new_rows(self, later, table):
        before = set(self.rows.get(table, []))
        return [r for r in later.rows.get(table, []) if r not in before]

    def new_files(self, later):
        return sorted(set(later.files) - set(self.files))


def leftovers(state_dir):
    """Paths a finished operation must not leave: temp and staging files or directories
    anywhere, and anything in uploads/ (every upload / export scratch is removed)."""
    found = []
    for root, dirs, files in os.walk(state_dir):
        for name in dirs + files:
            rel = os.path.relpath(os.path.join(root, name), state_dir)
            if name == BALLAST:
                continue
            if (".tmp" in name or name.startswith(".staging-") or name.endswith(".partial") or name.endswith(".part")
                    or rel.startswith("uploads" + os.sep)):
                found.append(rel)
    return sorted(found)


# --- small volumes -------------------------------------------------------------------------

def mount_tmpfs(directory, size_bytes):
    """Mounts a tmpfs of size_bytes on directory; raises PermissionError when not allowed."""
    os.makedirs(directory, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dk,mode=0755" % (size_bytes // 1024), "tmpfs", directory],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise PermissionError("mount -t tmpfs on %s: %s" % (directory, r.stderr.strip()))


def umount(directory):
    subprocess.run(["umount", "-l", directory], capture_output=True)


def in_mount_namespace_or_reexec():
    """Runs this script again inside `unshare --user --map-root-user --mount` when mounting a
    tmpfs is not allowed here (not root). Returns None when mounting works here; otherwise
    exits with the re-executed script's status. A machine where neither works fails loudly."""
    probe = os.path.join("/tmp", "qlorad-fault-probe-%d" % os.getpid())
    try:
        mount_tmpfs(probe, 64 * 1024)
        umount(probe)
        return None
    except PermissionError as e:
        reason = str(e)
    finally:
        try:
            os.rmdir(probe)
        except OSError:
            pass
    if os.environ.get("QLORAD_FAULT_UNSHARED"):
        sys.exit("FAIL: cannot mount a tmpfs even inside a user+mount namespace (%s); this test needs root or "
                 "unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1)" % reason)
    print("mount not permitted here (%s): re-running inside unshare --user --map-root-user --mount" % reason, flush=True)
    env = dict(os.environ, QLORAD_FAULT_UNSHARED="1")
    r = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", sys.executable] + sys.argv, env=env)
    sys.exit(r.returncode)


def free_bytes(mount):
    st = os.statvfs(mount)
    return st.f_bavail * st.f_frsize


def leave_free(mount, wanted):
    """Fills the volume mounted at `mount` with a ballast file so that about `wanted` bytes
    (rounded down to pages) stay free. Returns the free bytes measured afterwards."""
    release(mount)
    size = free_bytes(mount) - wanted
    if size < 0:
        raise AssertionError("%s has only %d bytes free, %d wanted" % (mount, free_bytes(mount), wanted))
    fd = os.open(os.path.join(mount, BALLAST), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        if size:
            os.posix_fallocate(fd, 0, size)  # tmpfs allocates the pages now (a sparse file would not)
    finally:
        os.close(fd)
    return free_bytes(mount)


def release(mount):
    try:
        os.remove(os.path.join(mount, BALLAST))
    except FileNotFoundError:
        pass


def dir_bytes(path):
    """Bytes a directory tree takes on tmpfs (each file rounded up to 4 KiB pages)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            total += (os.path.getsize(os.path.join(root, name)) + 4095) // 4096 * 4096
    return total


# --- gRPC ----------------------------------------------------------------------------------

class Client:
    """The stubs of one daemon."""

    def __init__(self, stubs, daemon):
        import grpc
        self.grpc = grpc
        self.channel = grpc.insecure_channel(daemon.address)
        self.ds, self.jb, self.ad, self.inf = (stubs[n][0] for n in ("datasets", "jobs", "adapters", "inference"))
        self.datasets = stubs["datasets"][1].DatasetsStub(self.channel)
        self.jobs = stubs["jobs"][1].JobsStub(self.channel)
        self.adapters = stubs["adapters"][1].AdaptersStub(self.channel)
        self.inference = stubs["inference"][1].InferenceStub(self.channel)

    def close(self):
        self.channel.close()

    def upload(self, dataset_id, path, timeout=120):
        with open(path, "rb") as f:
            body = f.read()
        header = self.ds.UploadDatasetHeader(dataset_id=dataset_id, format="classification", allow_small_dataset=True)
        parts = [self.ds.UploadDatasetRequest(header=header)]
        parts += [self.ds.UploadDatasetRequest(chunk=body[i:i + (1 << 20)]) for i in range(0, len(body), 1 << 20)]
        return self.datasets.UploadDataset(iter(parts), timeout=timeout)

    def dataset_ids(self):
        return sorted(d.dataset_id for d in self.datasets.ListDatasets(self.ds.ListDatasetsRequest(page_size=100),
                                                                       timeout=30).datasets)

    def adapter_ids(self):
        return sorted(a.adapter_id for a in self.adapters.ListAdapters(self.ad.ListAdaptersRequest(page_size=100),
                                                                       timeout=30).adapters)

    def submit(self, dataset_id, name, r=64, timeout=60):
        hp = self.jb.Hyperparameters(epochs=1, batch_size=16, max_seq_len=32, learning_rate=1e-3, seed=3)
        return self.jobs.CreateJob(self.jb.CreateJobRequest(dataset_id=dataset_id, adapter_name=name, quantize="none",
                                                            lora=self.jb.LoraSettings(r=r), hyperparameters=hp),
                                   timeout=timeout)

    def wait_job(self, job_id, timeout=300):
        deadline = time.time() + timeout
        while time.time() < deadline:
            job = self.jobs.GetJob(self.jb.GetJobRequest(job_id=job_id), timeout=30)
            if job.status in ("succeeded", "failed", "cancelled"):
                return job
            time.sleep(0.1)
        raise AssertionError("job %s did not end within %d s" % (job_id, timeout))

    def generate(self, adapter="", prompt="The food was", timeout=60):
        return self.inference.Generate(self.inf.GenerateRequest(adapter=adapter, prompt=prompt, max_new_tokens=4),
                                       timeout=timeout).text


def expect_rpc_error(grpc, fn, codes):
    """Runs fn(); returns the RpcError, which must carry one of `codes` (names)."""
    try:
        fn()
    except grpc.RpcError as e:
        if e.code().name not in codes:
            raise AssertionError("expected %s, got %s: %s" % ("/".join(codes), e.code().name, e.details()))
        return e
    raise AssertionError("expected %s, the call succeeded" % "/".join(codes))


def finish(failures, work):
    """A fault test's exit status: 1 (the work directory kept for inspection) if anything
    failed, else 0 with the work directory removed."""
    if failures:
        print("%d failure(s); work directory kept: %s" % (len(failures), work))
        return 1
    shutil.rmtree(work, ignore_errors=True)
    return 0

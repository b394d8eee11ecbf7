"""Crash consistency of the real daemon: qlorad is SIGKILLed at seeded points inside
promote / approve / reject / delete / job completion; after each restart the store
invariants of crash_checker.py hold ((a) aliases name deployed adapters, (b) deployed
adapters are loaded or loadable, (c) audit entries match state transitions one to one,
(d) jobs and their adapters agree), and the workflow then runs to its end on that state.

How a point is chosen: the daemon's test-only crash hook (core/util/crash_point.h) numbers
every SQLite commit ("store.commit"). A traced run of the workflow without a crash maps
commit numbers to workflow steps; the seed draws POINTS commits among the steps of the
kinds above (each kind at least once); each crash run replays the workflow from the same
starting state with QLORAD_TEST_CRASH_AT=store.commit:N, so the daemon dies just before
its N-th commit (commits 1..N-1 are on disk). Then: restart without the variable on the
same --state-dir, check, finish the workflow (each step checks what is already done, so
an interrupted one is retried), check again.

usage: crash_consistency_test.py [--seed S] [--points 20] [--only K]   (prints the seed)
       crash_consistency_test.py --self-test   (the checker against hand-made databases)
"""

import argparse
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import struct
import sys
import time

import crash_checker

DATASET = "reviews"
KINDS = ("promote", "approve", "reject", "delete", "job")  # the step kinds crash points are drawn from
# The workflow: (kind, adapter name, alias). Imports first (they give the adapters to decide on).
STEPS = [
    ("import", "a", None), ("import", "b", None), ("import", "c", None),
    ("evaluate", "a", None), ("evaluate", "b", None), ("evaluate", "c", None),
    ("approve", "a", None), ("approve", "b", None), ("reject", "c", None),
    ("promote", "a", "prod"), ("promote", "b", "prod"),  # deploy, then move the alias to b
    ("delete", "a", None), ("delete", "c", None),        # a deployed-but-unaliased and a rejected adapter
    ("job", "tuned", None), ("evaluate", "tuned", None), ("approve", "tuned", None), ("promote", "tuned", "canary"),
    ("import", "d", None), ("import", "e", None), ("evaluate", "d", None), ("evaluate", "e", None),
    ("approve", "d", None), ("reject", "e", None),
    ("promote", "d", "staging"), ("promote", "b", "staging"),  # a second alias: deploy d, then move it to b
    ("delete", "e", None), ("delete", "d", None),              # a rejected and a deployed-but-unaliased adapter
]
JOB_TAIL = 6  # the job's last commits (adapter row, registration, final status) count as "job completion"


class DaemonGone(Exception):
    """The daemon exited while the client waited on the database."""


class Crashed(Exception):
    def __init__(self, step, error):
        super().__init__("daemon died in step %d %s (%s)" % (step, STEPS[step], error))
        self.step = step


# --- an independent PEFT writer (json + struct; nothing from qlorad) -----------------------

def write_peft(directory, model_dir, seed, r=2):
    """A PEFT LoRA adapter (q_proj and v_proj of every layer, fp32, B non-zero) for model_dir."""
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    hidden, layers = cfg["hidden_size"], cfg["num_hidden_layers"]
    kv = hidden // cfg["num_attention_heads"] * cfg.get("num_key_value_heads", cfg["num_attention_heads"])
    rng = random.Random(seed)
    tensors = []
    for layer in range(layers):
        for module, out_features in (("q_proj", hidden), ("v_proj", kv)):
            key = "base_model.model.model.layers.%d.self_attn.%s" % (layer, module)
            tensors.append((key + ".lora_A.weight", [r, hidden]))
            tensors.append((key + ".lora_B.weight", [out_features, r]))
    header, blobs, offset = {}, [], 0
    for name, shape in tensors:
        count = shape[0] * shape[1]
        blobs.append(struct.pack("<%df" % count, *(rng.gauss(0, 0.3) for _ in range(count))))
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + 4 * count]}
        offset += 4 * count
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "adapter_model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    with open(os.path.join(directory, "adapter_config.json"), "w") as f:
        json.dump({"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": r, "lora_alpha": 2 * r, "lora_dropout": 0.0,
                   "bias": "none", "fan_in_fan_out": False, "use_rslora": False, "base_model_name_or_path": "tiny",
                   "target_modules": ["q_proj", "v_proj"]}, f)
    return directory


# --- the workflow against one daemon -------------------------------------------------------

class Workflow:
    """Runs STEPS against a daemon; `ids` (adapter name -> id) and `job_id` survive restarts."""

    def __init__(self, env, daemon):
        self.env, self.ids, self.job_id, self.restarted = env, {}, None, False
        self.attach(daemon)

    def attach(self, daemon, restarted=False):
        self.restarted = restarted
        import grpc
        self.grpc, self.d = grpc, daemon
        self.channel = grpc.insecure_channel(daemon.address)
        s = self.env.stubs
        self.ad, self.ev, self.jb = s["adapters"][0], s["evaluations"][0], s["jobs"][0]
        self.adapters = s["adapters"][1].AdaptersStub(self.channel)
        self.evaluations = s["evaluations"][1].EvaluationsStub(self.channel)
        self.jobs = s["jobs"][1].JobsStub(self.channel)

    def close(self):
        self.channel.close()

    def run(self, first=0, trace=None, marks=None):
        """Steps first.. in order; marks[i] = the trace's commit count after step i."""
        for i in range(first, len(STEPS)):
            try:
                getattr(self, "step_" + STEPS[i][0])(*STEPS[i][1:])
            except (self.grpc.RpcError, DaemonGone) as e:
                if self.d.proc.poll() is None:
                    try:
                        self.d.proc.wait(timeout=5)
                    except Exception:
                        raise e
                what = e.code().name if isinstance(e, self.grpc.RpcError) else str(e)
                raise Crashed(i, "%s, exit %s" % (what, self.d.proc.returncode))
            if marks is not None:
                marks.append(count_lines(trace))

    def get(self, ref):
        """The adapter, or None when NOT_FOUND."""
        try:
            return self.adapters.GetAdapter(self.ad.AdapterRef(adapter=ref), timeout=60)
        except self.grpc.RpcError as e:
            if e.code() == self.grpc.StatusCode.NOT_FOUND:
                return None
            raise

    def step_import(self, name, _):
        got = self.adapters.ImportAdapter(self.ad.ImportAdapterRequest(name=name, path=self.env.peft[name]), timeout=120)
        self.ids[name] = got.adapter_id

    def step_evaluate(self, name, _):
        if self.get(self.ids[name]).state != "trained":
            return  # done before the crash
        self.evaluations.CreateEvaluation(self.ev.CreateEvaluationRequest(dataset_id=DATASET, adapter=self.ids[name],
                                                                          max_examples=4), timeout=300)

    def step_approve(self, name, _):
        if self.get(self.ids[name]).state == "evaluated":
            self.adapters.ApproveAdapter(self.ad.DecisionRequest(adapter=self.ids[name], note="crash test"), timeout=60)

    def step_reject(self, name, _):
        if self.get(self.ids[name]).state == "evaluated":
            self.adapters.RejectAdapter(self.ad.DecisionRequest(adapter=self.ids[name], note="crash test"), timeout=60)

    def step_promote(self, name, alias):
        target = self.get(alias)
        if target is None or target.adapter_id != self.ids[name]:
            self.adapters.PromoteAdapter(self.ad.PromoteAdapterRequest(adapter=self.ids[name], alias=alias), timeout=120)

    def step_delete(self, name, _):
        if self.get(self.ids[name]) is not None:
            self.adapters.DeleteAdapter(self.ad.AdapterRef(adapter=self.ids[name]), timeout=60)

    def step_job(self, name, _):
        if self.job_id is None:  # a job stored before the crash is resumed by the daemon, not submitted again
            listed = self.jobs.ListJobs(self.jb.ListJobsRequest(page_size=100), timeout=60).jobs
            mine = [j for j in listed if json.loads(j.spec_json or "{}").get("adapter_name") == name]
            self.job_id = mine[0].job_id if mine else None
        if self.job_id is None:
            hp = self.jb.Hyperparameters(epochs=1, batch_size=8, max_seq_len=48, learning_rate=1e-3, seed=3)
            job = self.jobs.CreateJob(self.jb.CreateJobRequest(dataset_id=DATASET, adapter_name=name, quantize="none",
                                                               lora=self.jb.LoraSettings(r=2), hyperparameters=hp),
                                      timeout=60)
            self.job_id = job.job_id
        deadline = time.time() + 300
        while True:
            job = self.jobs.GetJob(self.jb.GetJobRequest(job_id=self.job_id), timeout=60)
            if job.status in ("succeeded", "failed", "cancelled"):
                break
            if time.time() > deadline:
                raise AssertionError("job %s still %s after 300 s" % (self.job_id, job.status))
            time.sleep(0.05)
        if job.status != "succeeded":
            raise AssertionError("job %s %s: %s" % (self.job_id, job.status, job.error))
        self.ids[name] = job.adapter_id
        if not self.restarted:  # after a crash the numbering no longer matters (and the event may be lost)
            self.wait_final_event()

    def wait_final_event(self):
        """The worker appends the terminal event after the status: wait for it, so the next
        step's commits are numbered the same in every run."""
        db = os.path.join(self.d.state_dir, "qlorad.db")
        for _ in range(600):
            with sqlite3.connect("file:%s?mode=ro" % db, uri=True) as c:
                rows = c.execute("SELECT event_json FROM job_events WHERE job_id = ? ORDER BY seq DESC LIMIT 1",
                                 (self.job_id,)).fetchall()
            if rows and json.loads(rows[0][0]).get("status") == "succeeded":
                return
            if self.d.proc.poll() is not None:
                raise DaemonGone("exited while waiting for the job's final event")
            time.sleep(0.05)
        raise AssertionError("job %s: no final status event" % self.job_id)

    def probe(self, adapter_id, stored_loaded):
        """(b): loaded (the stored flag and the daemon's GetAdapter agree) or loadable now.
        Stored loaded but not resident is a violation: the restart did not rebuild the
        engine's residency from the store (a failed reload clears the stored flag)."""
        got = self.get(adapter_id)
        if stored_loaded:
            if got is not None and got.loaded:
                return True, "loaded"
            return False, "stored loaded = 1 but not resident in the engine"
        try:
            self.adapters.LoadAdapter(self.ad.LoadAdapterRequest(adapter=adapter_id), timeout=120)
            return True, "loadable"
        except self.grpc.RpcError as e:
            return False, "LoadAdapter: %s %s" % (e.code().name, e.details())


def normalized(violation):
    """A violation without its audit sequence numbers (they differ between runs)."""
    return re.sub(r"#\d+", "#", violation)


def count_lines(path):
    try:
        with open(path) as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


# --- the environment: model, dataset, adapters, a prepared state directory -----------------

class Env:
    def __init__(self):
        import daemon_harness as h
        self.h = h
        self.work = h.tempdir("qlorad-crash-")
        self.model = h.make_model(os.path.join(self.work, "model"))
        self.root = os.path.join(self.work, "import-root")
        self.peft = {n: write_peft(os.path.join(self.root, n), self.model, seed) for seed, n in enumerate("abcde", 1)}
        self.stubs = h.python_stubs(os.path.join(self.work, "stubs"))
        self.base_state = os.path.join(self.work, "base-state")
        self.prepare_base_state()

    def daemon(self, name, state_dir, crash_at=None, trace=None):
        workdir = os.path.join(self.work, name)
        os.makedirs(workdir, exist_ok=True)
        env = {"QLORAD_TEST_CRASH_AT": crash_at, "QLORAD_TEST_CRASH_TRACE": trace}
        for k, v in env.items():  # the daemon inherits these at spawn; this process never reads them
            if v:
                os.environ[k] = v
        try:
            return self.h.Daemon(workdir, self.model, tokens=False, state_dir=state_dir,
                                 # versions are promoted over each other on a tiny hold-out: the CI gate
                                 # (promotion_gate_e2e) passes any comparable pair with margin 1
                                 extra_args=["--import-root", self.root, "--promotion-margin", "1"]).start()
        finally:
            for k in env:
                os.environ.pop(k, None)

    def prepare_base_state(self):
        """Dataset uploaded and the baseline evaluated once (reused by every adapter evaluation)."""
        d = self.daemon("base", self.base_state)
        import grpc
        ds = self.stubs["datasets"]
        data = self.h.write_sentiment(os.path.join(self.work, "reviews.jsonl"), limit=60)
        with open(data, "rb") as f:
            body = f.read()
        header = ds[0].UploadDatasetHeader(dataset_id=DATASET, format="classification", allow_small_dataset=True)
        with grpc.insecure_channel(d.address) as channel:
            ds[1].DatasetsStub(channel).UploadDataset(
                iter([ds[0].UploadDatasetRequest(header=header), ds[0].UploadDatasetRequest(chunk=body)]), timeout=120)
            ev = self.stubs["evaluations"]
            ev[1].EvaluationsStub(channel).CreateEvaluation(ev[0].CreateEvaluationRequest(dataset_id=DATASET,
                                                                                          max_examples=4), timeout=300)
        assert d.stop(signal.SIGTERM) == 0

    def fresh_state(self, name):
        state = os.path.join(self.work, name, "state")
        shutil.copytree(self.base_state, state)
        return state


def stop(daemon):
    if daemon.proc is not None and daemon.proc.poll() is None:
        daemon.stop(signal.SIGTERM)
    elif daemon.proc is not None:
        daemon.proc = None
        daemon.log.close()


def check_now(wf, when):
    snap = crash_checker.read_snapshot(os.path.join(wf.d.state_dir, "qlorad.db"))
    found = crash_checker.check(snap, wf.probe)
    for v in found:
        print("      %s: %s" % (when, v))
    return found


# --- calibration and crash runs ------------------------------------------------------------

def calibrate(env):
    """A traced run without a crash: (the commit ranges of each step, its violations)."""
    trace = os.path.join(env.work, "calibration.trace")
    d = env.daemon("calibration", env.fresh_state("calibration"), trace=trace)
    wf, marks = Workflow(env, d), []
    started = time.time()
    start_commits = count_lines(trace)
    wf.run(trace=trace, marks=marks)
    print("calibration: %d commits at start-up, the workflow in %.1f s:" % (start_commits, time.time() - started))
    ranges, low = [], start_commits
    for i, high in enumerate(marks):
        ranges.append((low + 1, high))
        print("  step %2d %-22s commits %d..%d" % (i, "%s %s%s" % (STEPS[i][0], STEPS[i][1], " -> " + STEPS[i][2]
                                                                     if STEPS[i][2] else ""), low + 1, high))
        low = high
    found = check_now(wf, "without a crash")
    wf.close()
    stop(d)
    return ranges, found


def draw_points(ranges, seed, count):
    """`count` distinct (commit, step) among the KINDS steps, every kind at least once."""
    pool = {}
    for i, (low, high) in enumerate(ranges):
        kind = STEPS[i][0]
        if kind not in KINDS:
            continue
        commits = range(max(low, high - JOB_TAIL + 1), high + 1) if kind == "job" else range(low, high + 1)
        for n in commits:
            pool.setdefault(kind, []).append((n, i))
    rng = random.Random(seed)
    chosen = [rng.choice(pool[k]) for k in KINDS if pool.get(k)]
    rest = [p for k in KINDS for p in pool.get(k, []) if p not in chosen]
    rng.shuffle(rest)
    chosen += rest[:max(0, count - len(chosen))]
    if len(chosen) < count:
        raise AssertionError("only %d commits inside %s steps, %d points asked (add workflow steps)"
                             % (len(chosen), "/".join(KINDS), count))
    return sorted(chosen)[:count]


def crash_run(env, index, commit, step):
    """One crash point: (violations after the restart, after completion, the step it died in)."""
    name = "run-%02d" % index
    state = env.fresh_state(name)
    d = env.daemon(name, state, crash_at="store.commit:%d" % commit)
    wf = Workflow(env, d)
    try:
        wf.run()
        raise AssertionError("store.commit:%d was never reached (the workflow finished)" % commit)
    except Crashed as c:
        died = c.step
    wf.close()
    if d.proc.returncode != -signal.SIGKILL:
        raise AssertionError("daemon exit %s, not SIGKILL" % d.proc.returncode)
    stop(d)
    d = env.daemon(name, state)  # no crash variable: the same state directory
    wf.attach(d, restarted=True)
    after_restart = check_now(wf, "after restart")
    wf.run(first=died)
    after_completion = check_now(wf, "after completion")
    wf.close()
    stop(d)
    return after_restart, after_completion, died


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--points", type=int, default=20)
    parser.add_argument("--only", type=int, default=None, help="run only the K-th point (0-based) of the seed")
    parser.add_argument("--self-test", action="store_true")
    args = parser.parse_args()
    if args.self_test:
        import crash_checker_selftest
        return crash_checker_selftest.main()
    seed = args.seed if args.seed is not None else int(os.environ.get("QLORAD_CRASH_SEED", random.SystemRandom().randrange(1 << 31)))
    print("crash consistency: seed %d (reproduce with --seed %d)" % (seed, seed), flush=True)
    started = time.time()
    env = Env()
    ranges, failures = calibrate(env)
    points = draw_points(ranges, seed, args.points)
    calibration = {normalized(v) for v in failures}
    failed = ["without a crash: " + v for v in failures]
    by_label = {}
    for k, (commit, step) in enumerate(points):
        if args.only is not None and k != args.only:
            continue
        print("point %2d: QLORAD_TEST_CRASH_AT=store.commit:%d (step %d %s %s)" % (k, commit, step, *STEPS[step][:2]),
              flush=True)
        after_restart, after_completion, died = crash_run(env, k, commit, step)
        if died != step:  # the commit numbering drifted: the point is not where it was drawn
            failed.append("point %d store.commit:%d: died in step %d %s, not in the drawn step %d %s"
                          % (k, commit, died, STEPS[died][:2], step, STEPS[step][:2]))
        tag = "point %d store.commit:%d (%s %s)" % (k, commit, *STEPS[died][:2])
        found = ["after restart: " + v for v in after_restart]
        found += ["after completion: " + v for v in after_completion if v not in after_restart]
        failed += ["%s %s" % (tag, v) for v in found]
        crash_only = sorted({v.split(": ", 1)[1].split(" ", 1)[0] for v in found
                             if normalized(v.split(": ", 1)[1]) not in calibration})
        for label in crash_only:
            by_label.setdefault(label, []).append(tag)
        print("      %s" % ("ok" if not found else "VIOLATED%s" % (
            " (beyond the no-crash run: %s)" % " ".join(crash_only) if crash_only else " (as without a crash)")),
              flush=True)
    print("seed %d: %d points in %.1f s, %d violations" % (seed, len(points), time.time() - started, len(failed)))
    for v in failed:
        print("  " + v)
    for label, tags in sorted(by_label.items()):
        print("violated only after a crash: %s at %s" % (label, "; ".join(tags)))
    if not failed:
        shutil.rmtree(env.work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

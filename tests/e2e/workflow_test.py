"""End to end through qloractl against the real daemon: the whole workflow (upload ->
baseline eval -> QLoRA job -> adapter eval -> approve -> promote -> generate/classify ->
metrics), cancellation, SIGKILL in the middle of a job (it resumes from its checkpoint and
finishes), SIGTERM drain, and bad requests that must fail with the right code and change
nothing."""

import csv
import json
import os
import signal
import sqlite3
import struct
import subprocess
import time
import unittest

import daemon_harness as h

JOB_ARGS = ["--dataset", "imdb", "--batch-size", "8", "--max-seq-len", "128", "--lr", "3e-3", "--r", "8"]


def read_safetensors(path):
    """(metadata, {name: (dtype/shape/offsets, raw bytes)}) of a safetensors file, read with
    struct + json only (independent of qlorad's reader)."""
    with open(path, "rb") as f:
        blob = f.read()
    (size,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + size])
    metadata = header.pop("__metadata__", {})
    base = 8 + size
    return metadata, {name: (h, blob[base + h["data_offsets"][0]:base + h["data_offsets"][1]])
                      for name, h in header.items()}


class WorkflowTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = h.tempdir("qlorad-e2e-")
        cls.model = h.make_model(os.path.join(cls.work, "model"))
        cls.data = h.write_sentiment(os.path.join(cls.work, "imdb.jsonl"))

    def start(self, name, extra=(), env=None):
        workdir = os.path.join(self.work, name)
        os.makedirs(workdir, exist_ok=True)
        d = h.Daemon(workdir, self.model, extra_args=extra, env=env).start()
        self.addCleanup(lambda: d.proc and d.stop(signal.SIGKILL))
        d.ctl("datasets", "upload", self.data, "--id", "imdb", "--format", "classification", role="trainer")
        return d

    def wait_event(self, d, job_id, predicate, timeout=120):
        """Polls the job's event stream (qloractl jobs watch would block until the end)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            job = d.ctl_json("jobs", "get", job_id, role="viewer")
            if predicate(job):
                return job
            time.sleep(0.05)
        self.fail("timed out waiting on job %s" % job_id)

    def test_full_workflow(self):
        d = self.start("workflow")
        baseline = d.ctl_json("eval", "--dataset", "imdb", role="trainer")
        self.assertFalse(baseline.get("has_adapter", False))
        watch = d.ctl("jobs", "submit", "--name", "sentiment", "--epochs", "3", *JOB_ARGS, "--watch", role="trainer")
        self.assertIn("succeeded -> adapter sentiment@1", watch.stderr)
        self.assertIn("tok/s ETA", watch.stderr)  # the live progress bar
        adapters = d.ctl_json("adapters", "list")["adapters"]
        self.assertEqual([a["adapter_id"] for a in adapters], ["sentiment@1"])
        self.assertEqual(adapters[0]["state"], "trained")
        # Deploying before evaluation and approval is refused by the policy.
        refused = d.ctl("adapters", "promote", "sentiment@1", "sentiment:prod", role="deployer", check=False)
        self.assertNotEqual(refused.returncode, 0)
        self.assertIn("FAILED_PRECONDITION", refused.stderr)
        evaluation = d.ctl_json("eval", "--dataset", "imdb", "--adapter", "sentiment@1", role="trainer")
        self.assertTrue(evaluation["has_adapter"])
        self.assertAlmostEqual(evaluation["baseline_value"], baseline["baseline_value"], places=9)  # reused baseline
        record = json.loads(evaluation["record_json"])
        self.assertEqual(record["baseline"]["outputs"], json.loads(baseline["record_json"])["baseline"]["outputs"])
        # The adapter must be better than the base model, with confidence: the lower end of the
        # paired bootstrap 95% CI of (adapter - baseline) on the headline metric is above 0.
        delta = record["delta"]
        self.assertEqual(record["headline_metric"], "macro_f1")
        self.assertAlmostEqual(delta["lower"], evaluation["delta_lower"], places=9)
        print("macro F1: baseline %.3f, adapter %.3f, delta %.3f, 95%% CI [%.3f, %.3f]" % (
            evaluation["baseline_value"], evaluation["adapter_value"], delta["point"], delta["lower"], delta["upper"]))
        self.assertGreater(delta["lower"], 0, "adapter - baseline macro F1 CI %s does not exclude 0" % delta)
        self.assertTrue(os.path.exists(evaluation["report_path"]))
        self.assertEqual(d.ctl_json("adapters", "get", "sentiment@1")["state"], "evaluated")
        constrained = d.ctl_json("eval", "--dataset", "imdb", "--adapter", "sentiment@1", "--scoring", "constrained",
                                 "--max-examples", "30", role="trainer")
        self.assertEqual(json.loads(constrained["record_json"])["settings"]["scoring"], "constrained")
        self.check_human_review(d, evaluation["evaluation_id"])
        self.check_report_renders(evaluation["report_path"])
        exported = os.path.join(self.work, "exported")
        self.assertIn("PERMISSION_DENIED", d.ctl("adapters", "export", "sentiment@1", "--out", exported, role="viewer",
                                                 check=False).stderr)
        d.ctl("adapters", "export", "sentiment@1", "--out", exported, role="deployer")
        for name in ("adapter_config.json", "adapter_model.safetensors", "training_run.json"):
            with open(os.path.join(exported, name), "rb") as a, open(os.path.join(adapters[0]["path"], name), "rb") as b:
                self.assertEqual(a.read(), b.read(), name)
        d.ctl("adapters", "approve", "sentiment@1", "--note", "macro F1 up on the hold-out", role="deployer")
        promoted = d.ctl_json("adapters", "promote", "sentiment@1", "sentiment:prod", role="deployer")
        self.assertEqual(promoted["state"], "deployed")
        self.assertEqual(promoted["aliases"], ["sentiment:prod"])
        self.assertTrue(promoted["loaded"])
        gen = d.ctl_json("generate", "--adapter", "sentiment:prod", "--prompt", "The food was great", "--max-new-tokens", "5",
                         role="inference")
        self.assertEqual(gen["adapter_id"], "sentiment@1")
        self.assertGreater(len(gen["tokens"]), 0)
        streamed = d.ctl("generate", "--adapter", "sentiment:prod", "--prompt", "Terrible service", "--max-new-tokens", "4",
                         "--stream", role="inference")
        self.assertEqual(streamed.returncode, 0)
        cls = d.ctl_json("classify", "--adapter", "sentiment:prod", "--text", "I loved it", "--labels", "negative,positive",
                         role="inference")
        self.assertIn(cls["predicted"], ["negative", "positive"])
        metrics = d.metrics()
        self.assertIn('qlorad_rpc_requests_total{code="OK",method="Generate",service="qlorad.v1.Inference"}', metrics)
        self.assertIn('qlorad_inference_requests_total{adapter="sentiment@1"}', metrics)
        # A restart keeps everything and reloads the deployed adapter.
        self.assertEqual(d.stop(signal.SIGTERM), 0)
        d.start()
        again = d.ctl_json("adapters", "get", "sentiment:prod")
        self.assertTrue(again["loaded"])
        self.assertEqual(again["state"], "deployed")
        self.assertEqual(len(d.ctl_json("jobs", "list")["jobs"]), 1)
        d.stop(signal.SIGTERM)
        self.check_audit_log(os.path.join(d.state_dir, "qlorad.db"))

    def check_human_review(self, d, evaluation_id):
        """Blind review sample out, two reviewers' ratings in, agreement back in the record."""
        out = os.path.join(self.work, "review")
        os.makedirs(out, exist_ok=True)
        d.ctl("eval", "review-export", evaluation_id, "--out", out, "--size", "50", "--blind", role="trainer")
        with open(os.path.join(out, "review.csv"), newline="") as f:
            rows = list(csv.DictReader(f))
        self.assertEqual(len(rows), 50)
        self.assertIn("output_a", rows[0])
        self.assertNotIn("adapter_output", rows[0])  # blind: the key stays on the server
        files = []
        for reviewer, shift in (("alice", 0), ("bob", 1)):
            path = os.path.join(out, reviewer + ".csv")
            with open(path, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
                writer.writeheader()
                for i, row in enumerate(rows):
                    row = dict(row, rating_a=str(1 + (i + shift * (i % 3 == 0)) % 5), rating_b=str(1 + i % 5),
                               preference=["A", "B", "tie"][i % 3])
                    writer.writerow(row)
            files += ["--reviewer", "%s=%s" % (reviewer, path)]
        summary = json.loads(d.ctl("eval", "review-import", evaluation_id, *files, role="trainer").stdout)
        text = json.dumps(summary)
        self.assertIn("alice", text)
        self.assertIn("cohen_kappa", text)
        record = json.loads(d.ctl_json("eval", "get", evaluation_id)["record_json"])
        self.assertIn("alice", json.dumps(record["review"]))

    def check_report_renders(self, report_path):
        """The self-contained HTML report in headless Chromium: a screenshot is taken and the
        rendered DOM holds the classification table rows."""
        shot = os.path.join(self.work, "report.png")
        base = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=" + os.path.join(self.work, "chrome")]
        subprocess.run(base + ["--screenshot=" + shot, "--window-size=1200,2000", "file://" + report_path],
                       check=True, capture_output=True, timeout=120)
        with open(shot, "rb") as f:
            png = f.read()
        self.assertTrue(png.startswith(b"\x89PNG"))
        self.assertGreater(len(png), 20000, "a blank page compresses to a few KB")
        dom = subprocess.run(base + ["--dump-dom", "file://" + report_path], check=True, capture_output=True, text=True,
                             timeout=120).stdout
        self.assertGreaterEqual(dom.count('class="report-row"'), 4)  # 2 classes x baseline/adapter
        self.assertIn("sentiment@1", dom)

    def check_audit_log(self, db_path):
        """Every transition is in the audit log, which survives the restart and refuses rewrites."""
        db = sqlite3.connect(db_path)
        actions = [r[0] for r in db.execute("SELECT action FROM audit_log ORDER BY seq")]
        for action in ("create", "submit", "register", "evaluate", "approve", "promote_deploy", "import_reviews"):
            self.assertIn(action, actions)
        # One promote of an approved adapter is one transition, hence one entry (no separate deploy).
        self.assertEqual(actions.count("promote_deploy"), 1, actions)
        self.assertNotIn("deploy", actions)
        with self.assertRaises(sqlite3.DatabaseError):
            db.execute("UPDATE audit_log SET actor = 'mallory'")
        with self.assertRaises(sqlite3.DatabaseError):
            db.execute("DELETE FROM audit_log")
        db.close()

    def test_sigkill_mid_job_resumes_from_checkpoint(self):
        """SIGKILL mid-job, restart, resume from the checkpoint: the adapter is byte-identical to
        an uninterrupted run of the same job (same seed; CPU, one torch thread in both daemons)."""
        one_thread = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        args = ("jobs", "submit", "--name", "resume", "--epochs", "4", "--seed", "11", *JOB_ARGS)
        cpu = ("--device", "cpu")  # byte equality is a CPU, one-thread promise (auto picks a GPU where one is)
        uninterrupted = self.start("restart-reference", extra=cpu, env=one_thread)
        reference_job = uninterrupted.ctl_json(*args, role="trainer")
        d = self.start("restart", extra=cpu, env=one_thread)
        job = d.ctl_json(*args, role="trainer")
        self.wait_event(d, job["job_id"], lambda j: int(j.get("progress", {}).get("step", 0)) >= 12)
        d.stop(signal.SIGKILL)  # no chance to checkpoint or clean up
        d.start()
        watch = d.ctl("jobs", "watch", job["job_id"], role="viewer")
        self.assertIn("succeeded", watch.stderr)
        adapter_dir = os.path.join(d.state_dir, "jobs", job["job_id"], "adapter")
        with open(os.path.join(adapter_dir, "training_run.json")) as f:
            run = json.load(f)
        self.assertGreaterEqual(run["resumed_from_step"], 10)
        self.assertEqual(run["steps"], int(d.ctl_json("jobs", "get", job["job_id"])["progress"]["total_steps"]))
        events = d.ctl("-o", "json", "jobs", "watch", job["job_id"]).stdout
        self.assertIn("daemon restarted", events)
        self.assertIn("succeeded", uninterrupted.ctl("jobs", "watch", reference_job["job_id"], role="viewer").stderr)
        reference_dir = os.path.join(uninterrupted.state_dir, "jobs", reference_job["job_id"], "adapter")
        with open(os.path.join(reference_dir, "training_run.json")) as f:
            self.assertFalse(json.load(f).get("resumed_from_step"), "the reference run was never interrupted")
        resumed = read_safetensors(os.path.join(adapter_dir, "adapter_model.safetensors"))
        reference = read_safetensors(os.path.join(reference_dir, "adapter_model.safetensors"))
        # The metadata names each daemon's own job id; everything else must be identical.
        self.assertEqual(resumed[0].pop("qlorad_job"), job["job_id"])
        self.assertEqual(reference[0].pop("qlorad_job"), reference_job["job_id"])
        self.assertEqual(resumed[0], reference[0], "safetensors metadata")
        self.assertEqual(sorted(resumed[1]), sorted(reference[1]), "tensor names")
        for name, (header, data) in resumed[1].items():
            self.assertEqual(header, reference[1][name][0], name)
            self.assertTrue(data == reference[1][name][1], "%s: the resumed adapter's bytes differ from the "
                            "uninterrupted run's" % name)

    def test_sigterm_drains_and_the_job_continues_after_restart(self):
        d = self.start("drain")
        job = d.ctl_json("jobs", "submit", "--name", "drain", "--epochs", "4", *JOB_ARGS, role="trainer")
        self.wait_event(d, job["job_id"], lambda j: j["status"] == "running" and int(j.get("progress", {}).get("step", 0)) >= 3)
        self.assertEqual(d.stop(signal.SIGTERM), 0)
        d.start()
        self.assertIn("succeeded", d.ctl("jobs", "watch", job["job_id"]).stderr)

    def test_cancel(self):
        d = self.start("cancel")
        job = d.ctl_json("jobs", "submit", "--name", "cancelme", "--epochs", "20", *JOB_ARGS, role="trainer")
        self.wait_event(d, job["job_id"], lambda j: j["status"] == "running")
        d.ctl("jobs", "cancel", job["job_id"], role="trainer")
        final = self.wait_event(d, job["job_id"], lambda j: j["status"] in ("cancelled", "succeeded", "failed"))
        self.assertEqual(final["status"], "cancelled")
        self.assertEqual(d.ctl_json("adapters", "list"), {})  # nothing registered
        again = d.ctl("jobs", "cancel", job["job_id"], role="trainer", check=False)
        self.assertIn("FAILED_PRECONDITION", again.stderr)

    def test_bad_requests_get_the_right_code_and_change_nothing(self):
        d = self.start("bad")
        before = d.ctl("-o", "json", "jobs", "list").stdout
        cases = [
            (["jobs", "submit", "--dataset", "imdb", "--name", "BAD NAME"], "INVALID_ARGUMENT", "adapter_name"),
            (["jobs", "submit", "--dataset", "nope", "--name", "x"], "NOT_FOUND", "dataset_id"),
            (["jobs", "submit", "--dataset", "imdb", "--name", "x", "--lr", "-1"], "INVALID_ARGUMENT", "learning_rate"),
            (["jobs", "submit", "--dataset", "imdb", "--name", "x", "--targets", "qq_proj"], "INVALID_ARGUMENT", "target_modules"),
            (["jobs", "get", "job-unknown"], "NOT_FOUND", "job-unknown"),
            (["adapters", "get", "missing@1"], "NOT_FOUND", "missing@1"),
            (["adapters", "approve", "nothing:prod"], "NOT_FOUND", "nothing:prod"),
            (["datasets", "get", "nope"], "NOT_FOUND", "nope"),
            (["datasets", "upload", self.data, "--id", "imdb"], "ALREADY_EXISTS", "imdb"),
            (["datasets", "upload", self.data, "--id", "bad id!"], "INVALID_ARGUMENT", "bad id!"),
            (["generate", "--prompt", "hi", "--max-new-tokens", "100000"], "INVALID_ARGUMENT", "max_new_tokens"),
            (["generate", "--prompt", "hi", "--adapter", "ghost@3"], "NOT_FOUND", "ghost@3"),
            (["eval", "--dataset", "nope"], "NOT_FOUND", "nope"),
            (["eval", "--dataset", "imdb", "--scoring", "vibes"], "INVALID_ARGUMENT", "scoring"),
        ]
        for args, code, needle in cases:
            result = d.ctl(*args, check=False)
            self.assertNotEqual(result.returncode, 0, args)
            self.assertIn(code, result.stderr, args)
            self.assertIn(needle, result.stderr, args)
            self.assertEqual(len(result.stderr.strip().splitlines()), 1, "one clear line: %r" % result.stderr)
        # (An oversize message, refused by the transport limit: python_client_test.py.)
        self.assertEqual(d.ctl("-o", "json", "jobs", "list").stdout, before)
        self.assertEqual(len(d.ctl_json("datasets", "list")["datasets"]), 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)

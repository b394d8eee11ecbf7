"""A daemon with two CPU training devices (`--devices cpu,cpu`), issue 20:

* two independent jobs run at once (each holds one device slot) and a third waits queued;
* a 2-device job (data-parallel ranks over in-process Gloo groups) holds both slots, so a
  1-device job submitted after it waits;
* both states are visible in the job API (`devices` of a running job, the jobs table) and in
  /metrics (`qlorad_device_busy{device="cpu#0"|"cpu#1"}`, scraped over HTTP);
* the 2-device job finishes and registers its adapter, whose training_run.json records
  world size 2 and the Gloo backend; a job asking for 3 devices is refused at submission.
"""

import json
import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon_harness as h  # noqa: E402

LONG = ["--epochs", "50", "--batch-size", "4", "--max-seq-len", "64", "--r", "4"]
SHORT = ["--epochs", "1", "--batch-size", "4", "--max-seq-len", "64", "--r", "4", "--dropout", "0.1"]


def busy(d):
    """qlorad_device_busy per slot, from a real scrape (the daemon refreshes it about once a second)."""
    out = {}
    for m in re.finditer(r'^qlorad_device_busy\{device="([^"]+)"\} (\S+)$', d.metrics(), re.M):
        out[m.group(1)] = float(m.group(2))
    return out


def wait_for(predicate, what, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError("timed out waiting for " + what)


class DevicesTest(unittest.TestCase):
    def test_jobs_share_two_devices(self):
        work = h.tempdir("qlorad-devices-")
        model = h.make_model(os.path.join(work, "model"))
        data = h.write_sentiment(os.path.join(work, "imdb.jsonl"), limit=200)
        d = h.Daemon(work, model, ["--devices", "cpu,cpu", "--collective-timeout", "60"],
                     env={"QLORAD_THREADS": "1"}).start()
        try:
            d.ctl("datasets", "upload", data, "--id", "imdb", "--format", "classification", role="trainer")
            refused = d.ctl("jobs", "submit", "--dataset", "imdb", "--name", "three", "--devices", "3", *SHORT,
                            role="trainer", check=False)
            self.assertNotEqual(refused.returncode, 0)
            self.assertIn("devices: 3 requested", refused.stderr + refused.stdout)

            def submit(name, extra, devices=1):
                return d.ctl_json("jobs", "submit", "--dataset", "imdb", "--name", name, "--devices", str(devices),
                                  *extra, role="trainer")["job_id"]

            def job(job_id):
                return d.ctl_json("jobs", "get", job_id, role="viewer")

            a, b = submit("long-a", LONG), submit("long-b", LONG)
            c = submit("long-c", LONG)
            wait_for(lambda: job(a)["status"] == "running" and job(b)["status"] == "running", "a and b running")
            held = sorted(job(a)["devices"] + job(b)["devices"])
            self.assertEqual(held, ["cpu#0", "cpu#1"])
            self.assertEqual(job(c)["status"], "queued")
            wait_for(lambda: busy(d) == {"cpu#0": 1.0, "cpu#1": 1.0}, "both devices busy in /metrics")
            table = d.ctl("jobs", "list", role="viewer").stdout
            self.assertIn("DEVICES", table)
            print("two jobs running at once on %s; the third is %s" % (held, job(c)["status"]))

            for j in (a, b, c):
                d.ctl("jobs", "cancel", j, role="trainer")
            wait_for(lambda: all(job(j)["status"] == "cancelled" for j in (a, b, c)), "cancellations")
            wait_for(lambda: busy(d) == {"cpu#0": 0.0, "cpu#1": 0.0}, "devices freed")

            wide = submit("wide", SHORT, devices=2)
            after = submit("after", SHORT)
            wait_for(lambda: job(wide)["status"] == "running", "the 2-device job running")
            self.assertEqual(sorted(job(wide)["devices"]), ["cpu#0", "cpu#1"])
            self.assertEqual(job(after)["status"], "queued")
            wait_for(lambda: busy(d) == {"cpu#0": 1.0, "cpu#1": 1.0}, "both devices busy in /metrics")
            self.assertEqual(job(after)["status"], "queued")
            print("the 2-device job holds %s; the 1-device job behind it is %s" % (job(wide)["devices"],
                                                                                   job(after)["status"]))
            wait_for(lambda: job(wide)["status"] in ("succeeded", "failed"), "the 2-device job to end", timeout=600)
            ended = job(wide)
            self.assertEqual(ended["status"], "succeeded", ended.get("error"))
            run = json.load(open(os.path.join(d.state_dir, "jobs", wide, "adapter", "training_run.json")))
            self.assertEqual(run["distributed"]["world_size"], 2)
            self.assertEqual(run["distributed"]["backend"], "gloo")
            print("2-device job: %s, %d steps, all-reduce %.0f bytes/step" %
                  (ended["adapter_id"], run["steps"], run["distributed"]["allreduce_bytes_per_step"]))
            wait_for(lambda: job(after)["status"] in ("succeeded", "failed"), "the job behind it", timeout=600)
            self.assertEqual(job(after)["status"], "succeeded")
        finally:
            d.stop()


if __name__ == "__main__":
    unittest.main()

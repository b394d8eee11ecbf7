"""DPO through the real daemon (issue 23): a preference dataset {prompt, chosen, rejected}
built from the UCI sentiment sentences (chosen = the correct label sentence, rejected = the
wrong one) is uploaded with qloractl; `jobs submit --method dpo --dpo-beta 0.2 --watch`
trains a QLoRA adapter; the watched events, the finished job and the Prometheus scrape
(taken while the job runs) carry the DPO metrics; the adapter is registered with a
training_run.json holding them and serves a generation. Mismatched method and dataset
format are refused at submission (FAILED_PRECONDITION naming the method)."""
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon_harness as h  # noqa: E402

failures = []


def check(cond, msg):
    print(("ok   " if cond else "FAIL ") + msg)
    if not cond:
        failures.append(msg)


def json_stream(text):
    """Every JSON value in `text` (qloractl -o json --watch prints one per event)."""
    decoder, values, at = json.JSONDecoder(), [], 0
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at >= len(text):
            return values
        value, at = decoder.raw_decode(text, at)
        values.append(value)


class Scraper(threading.Thread):
    """Scrapes /metrics until stopped; keeps the DPO gauge lines seen."""

    def __init__(self, daemon):
        super().__init__(daemon=True)
        self.d, self.stop, self.lines = daemon, threading.Event(), set()

    def run(self):
        while not self.stop.is_set():
            try:
                for line in self.d.metrics().splitlines():
                    if line.startswith("qlorad_training_dpo_"):
                        self.lines.add(line.split(" ")[0])
            except OSError:
                pass
            time.sleep(0.1)


def main():
    work = h.tempdir("qlorad-dpo-job-")
    model = h.make_model(os.path.join(work, "model"))
    prefs = os.path.join(work, "prefs.jsonl")
    classified = h.write_sentiment(prefs + ".cls", limit=240)
    h.write_preferences(classified, prefs)
    d = h.Daemon(work, model).start()
    try:
        d.ctl("datasets", "upload", prefs, "--id", "prefs", "--format", "preference")
        d.ctl("datasets", "upload", classified, "--id", "cls", "--format", "classification")
        info = d.ctl_json("datasets", "get", "prefs")
        check(info.get("format") == "preference", "the dataset is stored as format preference")

        sft = d.ctl("jobs", "submit", "--dataset", "prefs", "--name", "wrong", check=False)
        check(sft.returncode != 0 and "FAILED_PRECONDITION" in sft.stderr and "method dpo" in sft.stderr,
              "SFT on a preference dataset is refused at submission: " + sft.stderr.strip()[-120:])
        dpo_cls = d.ctl("jobs", "submit", "--dataset", "cls", "--name", "wrong", "--method", "dpo", check=False)
        check(dpo_cls.returncode != 0 and "preference dataset" in dpo_cls.stderr,
              "DPO on a classification dataset is refused: " + dpo_cls.stderr.strip()[-120:])

        scraper = Scraper(d)
        scraper.start()
        out = d.ctl("-o", "json", "jobs", "submit", "--dataset", "prefs", "--name", "pref", "--method", "dpo",
                    "--dpo-beta", "0.2", "--quantize", "nf4", "--epochs", "3", "--batch-size", "8", "--lr", "1e-2",
                    "--max-seq-len", "128", "--eval-fraction", "0.1", "--watch", timeout=1200).stdout
        scraper.stop.set()
        scraper.join()
        values = json_stream(out)
        job = values[-1]
        progress = [v["progress"] for v in values[:-1] if v.get("type") == "progress"]
        check(job.get("status") == "succeeded", "the DPO job succeeded (%s)" % job.get("status"))
        check(len(progress) > 0 and all("dpo" in p and int(p["dpo"].get("pairs", 0)) > 0 for p in progress),
              "every progress event carries the step's DPO metrics (%d events)" % len(progress))
        check(any("dpo_eval" in p for p in progress), "progress events carry the validation slice's DPO metrics")
        final = job.get("progress", {})
        check("accuracy" in final.get("dpo", {}) and "margin" in final.get("dpo_eval", {}),
              "GetJob's progress keeps the last DPO step and evaluation: %s" % json.dumps(final.get("dpo_eval")))
        spec = json.loads(job.get("specJson") or job.get("spec_json") or "{}")
        check(spec.get("method") == "dpo" and spec.get("trainer", {}).get("dpo_beta") == 0.2,
              "the stored spec records method dpo and dpo_beta 0.2")
        check(any(l.startswith("qlorad_training_dpo_reward_accuracy{") for l in scraper.lines) and
              any(l.startswith("qlorad_training_dpo_reward_margin{") for l in scraper.lines),
              "Prometheus exported the DPO gauges while the job ran: %s" % sorted(scraper.lines)[:4])

        adapter = d.ctl_json("adapters", "get", "pref@1")
        with open(os.path.join(adapter["path"], "training_run.json")) as f:
            record = json.load(f)
        dpo = record.get("dpo", {})
        check(record.get("method") == "dpo" and dpo.get("beta") == 0.2 and "validation" in dpo and "last_step" in dpo,
              "training_run.json holds method, beta, the last step and the validation curve")
        check(os.path.exists(os.path.join(adapter["path"], "drift_profile.json")),
              "the DPO adapter has a drift profile of its training prompts")
        ev = json.loads(d.ctl("-o", "json", "eval", "--dataset", "prefs", "--adapter", "pref@1", timeout=1200).stdout)
        rec = json.loads(ev["record_json"])
        check(ev["headline_metric"] == "accuracy" and rec["settings"].get("task") == "preference"
              and set(rec["references"]) == {"chosen"}, "the daemon evaluates the preference hold-out (accuracy of preferring chosen)")
        offline = json.loads(subprocess.run(
            [h.TOOL, "dpo-eval", "--model", model, "--adapter", adapter["path"], "--dataset-root",
             os.path.join(d.state_dir, "datasets"), "--dataset", "prefs", "--beta", "0.2", "--resamples", "100"],
            check=True, capture_output=True, text=True).stdout)
        served = (ev["baseline_value"], ev["adapter_value"])
        trained = (offline["base_preference"]["point"], offline["adapter_preference"]["point"])
        tie = 1.5 / offline["pairs"]  # a near-tie may fall either way between the two fp32 code paths
        check(abs(served[0] - trained[0]) < tie and abs(served[1] - trained[1]) < tie,
              "over the daemon's fp32 base, serving engine and training model agree on the base's and the adapter's preference %s vs %s" % (served, trained))
        d.ctl("adapters", "load", "pref@1")
        gen = d.ctl("generate", "--prompt", "Review: a wonderful film", "--adapter", "pref@1", "--max-new-tokens", "4")
        check(gen.returncode == 0, "the DPO adapter serves a generation")
    finally:
        d.stop()
    if failures:
        print("%d check(s) failed" % len(failures))
        sys.exit(1)
    print("all DPO job checks passed")


if __name__ == "__main__":
    main()

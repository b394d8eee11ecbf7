"""DPO on the main job's sentiment task (issue 23). The UCI sentiment sentences (imdb, yelp,
amazon; 3000 labelled) become preference pairs: prompt = the review, chosen = "The sentiment
is <correct label>.", rejected = the same sentence with the wrong label. A real daemon on
the main job's model stores them (format preference: validation, PII, hold-out split) and
trains a QLoRA adapter with `jobs submit --method dpo` and evaluates it (`qloractl eval`: the
share of hold-out pairs whose chosen sentence the adapter / the base finds more likely); then `qlorad-tool dpo-eval` scores
the hold-out split with the registered adapter and with its base (adapter disabled):
reward accuracy, the adapter's and the base's preference for the chosen sentence, and the
paired gain, each with a 95% bootstrap interval.

  QLORAD_TOOL=build/server/qlorad-tool QLORAD_DAEMON=build/server/qlorad QLORACTL=build/client/qloractl \\
    /usr/bin/python3 tests/bench/dpo_sentiment.py [--model DIR] [--epochs 2] [--lr 1e-3] [--beta 0.1]
    (default model: pretrain the main job's model, 240 s)
"""
import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import daemon_harness as h  # noqa: E402
import loftq_holdout  # noqa: E402  (the main job's model and sentiment data)


def interval(ci):
    return "%.4f [%.4f, %.4f]" % (ci["point"], ci["lower"], ci["upper"])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="")
    parser.add_argument("--epochs", default="2")
    parser.add_argument("--lr", default="1e-3")
    parser.add_argument("--beta", default="0.1")
    parser.add_argument("--batch-size", default="8")
    args = parser.parse_args()
    work = h.tempdir("qlorad-dpo-sentiment-")
    classified = os.path.join(work, "sentiment.jsonl")
    loftq_holdout.write_data(classified)
    model = args.model or loftq_holdout.pretrain(work, classified)
    prefs = os.path.join(work, "prefs.jsonl")
    h.write_preferences(classified, prefs)
    d = h.Daemon(work, model).start()
    try:
        d.ctl("datasets", "upload", prefs, "--id", "prefs", "--format", "preference")
        job_args = ["--method", "dpo", "--dpo-beta", args.beta, "--quantize", "nf4", "--r", "16", "--alpha", "32",
                    "--epochs", args.epochs, "--batch-size", args.batch_size, "--lr", args.lr, "--max-seq-len", "128",
                    "--seed", "1", "--eval-fraction", "0.05"]
        d.ctl("jobs", "submit", "--dataset", "prefs", "--name", "dpo", *job_args, "--watch", timeout=7200)
        adapter = d.ctl_json("adapters", "get", "dpo@1")["path"]
        # The daemon's own evaluation (serving engine, its fp32 base): accuracy = share of hold-out
        # pairs whose chosen completion is more likely, base vs adapter, paired 95% interval.
        served = json.loads(d.ctl("-o", "json", "eval", "--dataset", "prefs", "--adapter", "dpo@1", timeout=7200).stdout)
        with open(os.path.join(adapter, "training_run.json")) as f:
            record = json.load(f)
    finally:
        d.stop()
    proc = subprocess.run([h.TOOL, "dpo-eval", "--model", model, "--quantize", "nf4", "--adapter", adapter,
                           "--dataset-root", os.path.join(d.state_dir, "datasets"), "--dataset", "prefs",
                           "--beta", args.beta, "--max-seq-len", "128"], check=True, capture_output=True, text=True)
    report = json.loads(proc.stdout)
    dpo = record["dpo"]
    print("job: %s; %d steps, %.0f s, %d train pairs; validation start %s -> end %s" % (
        " ".join(job_args), record["steps"], record["wall_seconds"], record["train_examples_used"],
        json.dumps(dpo.get("validation_start")), json.dumps(dpo.get("validation", [{}])[-1])))
    print(json.dumps(report, indent=1))
    print("daemon eval (fp32 base): base %.4f -> adapter %.4f, difference 95%% CI [%.4f, %.4f]" % (
        served["baseline_value"], served["adapter_value"], served["delta_lower"], served["delta_upper"]))
    print("| hold-out pairs | reward accuracy | adapter prefers chosen | base prefers chosen | gain (paired) | DPO loss |")
    print("|---|---|---|---|---|---|")
    print("| %d | %s | %s | %s | %s | %.4f |" % (
        report["pairs"], interval(report["reward_accuracy"]), interval(report["adapter_preference"]),
        interval(report["base_preference"]), interval(report["preference_gain"]), report["dpo"]["loss"]))


if __name__ == "__main__":
    main()

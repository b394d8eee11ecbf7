"""LoftQ against the default init on the main job's task (issue 23): the same QLoRA job
(the main job's settings: NF4, r=16, alpha=32, 2 epochs, batch 8, lr 2e-3, max-seq-len 128,
seed 1) submitted twice to a real daemon, once with --lora-init kaiming and once with
--lora-init loftq, then each adapter evaluated on the hold-out (macro-F1, 95% bootstrap
interval of the difference to its base) through the daemon's evaluation.

The LoftQ adapter belongs to the base written beside it (<adapter>/base_model): the daemon
on the original model refuses to evaluate it (fingerprint check, shown below), so it is
evaluated by a second daemon started on that base, which it is uploaded to.

  QLORAD_TOOL=build/server/qlorad-tool QLORAD_DAEMON=build/server/qlorad QLORACTL=build/client/qloractl \\
    /usr/bin/python3 tests/bench/loftq_holdout.py [--model DIR]   (default: pretrain the main job's model, 240 s)
"""
import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import daemon_harness as h  # noqa: E402

JOB = ["--quantize", "nf4", "--r", "16", "--alpha", "32", "--epochs", "2", "--batch-size", "8", "--lr", "2e-3",
       "--max-seq-len", "128", "--seed", "1", "--watch"]


def pretrain(work, data):
    model = os.path.join(work, "model")
    prepared = os.path.join(work, "prepared")
    subprocess.run([h.TOOL, "prepare-data", "--source", data, "--root", prepared, "--id", "sentiment", "--format",
                    "classification"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([h.TOOL, "pretrain", "--text-dir", os.path.join(h.NPM, "@stdlib", "datasets-sotu", "data"),
                    "--jsonl", os.path.join(prepared, "sentiment", "train.jsonl"), "--tokenizer",
                    os.path.join(h.NPM, "@lenml", "tokenizer-llama2", "models"), "--layers", "4", "--hidden", "256",
                    "--heads", "8", "--kv-heads", "4", "--intermediate", "688", "--max-seconds", "240", "--seed",
                    "20261205", "--out", model], check=True, stdout=subprocess.DEVNULL)
    return model


def write_data(path):
    with open(path, "w") as out:
        for source in ("imdb", "yelp", "amazon"):
            with open(os.path.join(h.NPM, "sentiment", "test", "fixtures", source + ".json")) as f:
                for r in json.load(f):
                    if r.get("class") is not None:
                        out.write(json.dumps({"text": r["text"].strip(),
                                              "label": ["negative", "positive"][r["class"]]}) + "\n")


def evaluate(d, adapter):
    return json.loads(d.ctl("-o", "json", "eval", "--dataset", "sentiment", "--adapter", adapter, timeout=3600).stdout)


def row(name, e, job):
    rec = job.get("record", {})
    return "| %s | %s | %.4f | %.4f | [%.4f, %.4f] | %s |" % (
        name, rec.get("steps", "?"), e.get("baseline_value", 0.0), e.get("adapter_value", 0.0),
        e.get("delta_lower", 0.0), e.get("delta_upper", 0.0), rec.get("final_loss", "?"))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="")
    args = parser.parse_args()
    work = h.tempdir("qlorad-loftq-")
    data = os.path.join(work, "sentiment.jsonl")
    write_data(data)
    model = args.model or pretrain(work, data)
    rows, records = [], {}
    for sub in ("a", "b"):
        os.makedirs(os.path.join(work, sub))
    d = h.Daemon(os.path.join(work, "a"), model).start()
    try:
        d.ctl("datasets", "upload", data, "--id", "sentiment", "--format", "classification")
        for init in ("kaiming", "loftq"):
            d.ctl("jobs", "submit", "--dataset", "sentiment", "--name", init, "--lora-init", init, *JOB, timeout=7200)
            info = d.ctl_json("adapters", "get", init + "@1")
            with open(os.path.join(info["path"], "training_run.json")) as f:
                records[init] = {"record": json.load(f), "path": info["path"]}
        rows.append(row("kaiming (default)", evaluate(d, "kaiming@1"), records["kaiming"]))
        refused = d.ctl("eval", "--dataset", "sentiment", "--adapter", "loftq@1", check=False)
        print("evaluating the LoftQ adapter over the original base: exit %d: %s" % (
            refused.returncode, (refused.stderr or refused.stdout).strip()[-200:]))
    finally:
        d.stop()
    loftq = records["loftq"]
    step0 = loftq["record"]["base_model"]["initialized"]["step0_error"]
    d = h.Daemon(os.path.join(work, "b"), os.path.join(loftq["path"], "base_model")).start()
    try:
        d.ctl("datasets", "upload", data, "--id", "sentiment", "--format", "classification")
        d.ctl("adapters", "upload", loftq["path"], "--name", "loftq")
        rows.append(row("loftq (1 round), over its base", evaluate(d, "loftq@1"), loftq))
    finally:
        d.stop()
    print("LoftQ step 0: relative error %.4f vs plain NF4 %.4f over %d modules (factor %.4f)" % (
        step0["relative_error_initialized"], step0["relative_error_plain_quantization"], step0["modules"],
        step0["error_reduction_factor"]))
    print("| init | steps | base macro-F1 | adapter macro-F1 | 95% CI of the difference | final loss |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(r)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Sample packing's throughput on short examples (issue 23): `qlorad-tool train` on the UCI
sentiment sentences, alternating runs, medians and min-max of tokens/s (real tokens, padding
not counted) over --reps repetitions.

  tests/bench/packing_throughput.py [--reps 5] [--examples 600] [--layers 4] [--hidden 256]

Three configurations, the same data, model and seed:
  padded      --batch-size B: B examples per step, padded to the longest (length-grouped)
  packed      --batch-size B --packing: B rows of --max-seq-len tokens, whole examples packed
  padded-big  --batch-size K: K = the packed run's mean examples per step, padded; separates
              what packing's layout buys from what a bigger batch buys
Model: the main job's default shape (Llama, 4 layers, hidden 256, 8 heads / 4 kv heads,
intermediate 688, Llama-2 tokenizer), random weights, NF4 base, LoRA r=16 on all seven
projections. Not part of ctest (minutes)."""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.environ.get("QLORAD_SOURCE_DIR",
                                               os.path.dirname(os.path.abspath(__file__)) + "/../.."), "tests", "e2e"))
import daemon_harness as h  # noqa: E402


def train(a, work, name, batch_size, packing, rep):
    out = os.path.join(work, "run-%s-%d" % (name, rep))
    cmd = [h.TOOL, "train", "--model", os.path.join(work, "model"), "--dataset-root", os.path.join(work, "ds"),
           "--dataset", "s", "--out", out, "--quantize", "nf4", "--epochs", "1", "--batch-size", str(batch_size),
           "--max-seq-len", str(a.max_seq_len), "--r", "16", "--seed", "1", "--prompt-format", "plain", "--quiet"]
    if packing:
        cmd.append("--packing")
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    run = json.load(open(os.path.join(out, "training_run.json")))
    return {"rate": run["tokens_seen"] / run["wall_seconds"], "steps": run["steps"], "seconds": run["wall_seconds"],
            "tokens": run["tokens_seen"], "loss": run["final_loss"]}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--examples", type=int, default=600)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-seq-len", type=int, default=256)
    a = p.parse_args()
    work = tempfile.mkdtemp(prefix="qlorad-packing-bench-")
    subprocess.run([h.TOOL, "make-model", "--arch", "llama", "--layers", str(a.layers), "--hidden", str(a.hidden),
                    "--heads", "8", "--kv-heads", "4", "--intermediate", str(a.hidden * 43 // 16), "--vocab", "32000",
                    "--dtype", "f32", "--tokenizer", os.path.join(h.NPM, "@lenml", "tokenizer-llama2", "models"),
                    "--seed", "3", "--out", os.path.join(work, "model")], check=True, stdout=subprocess.DEVNULL)
    data = h.write_sentiment(os.path.join(work, "data.jsonl"), source="yelp", limit=a.examples)
    subprocess.run([h.TOOL, "prepare-data", "--source", data, "--root", os.path.join(work, "ds"), "--id", "s",
                    "--format", "classification"], check=True, stdout=subprocess.DEVNULL)
    # The packed run's examples per step fixes padded-big's batch size.
    probe = train(a, work, "probe", a.batch_size, True, 0)
    train_examples = sum(1 for _ in open(os.path.join(work, "ds", "s", "train.jsonl")))
    big = max(a.batch_size, round(train_examples / probe["steps"]))
    configs = [("padded", a.batch_size, False), ("packed", a.batch_size, True), ("padded-big", big, False)]
    results = {name: [] for name, _, _ in configs}
    for rep in range(a.reps):
        for name, batch, packing in configs:
            r = train(a, work, name, batch, packing, rep)
            results[name].append(r)
            print("rep %d %-10s batch %3d: %6.0f tok/s, %3d steps, %6d tokens in %5.1f s, last loss %.3f"
                  % (rep, name, batch, r["rate"], r["steps"], r["tokens"], r["seconds"], r["loss"]), flush=True)
    print("\n%d train examples (yelp), %d layers, hidden %d, max-seq-len %d, %d cores, %d reps each, alternating"
          % (train_examples, a.layers, a.hidden, a.max_seq_len, os.cpu_count(), a.reps))
    print("| configuration | batch | steps/epoch | examples/step | tokens/s median (min-max) | vs padded |")
    print("|---|---|---|---|---|---|")
    base = statistics.median(r["rate"] for r in results["padded"])
    for name, batch, _ in configs:
        rates = [r["rate"] for r in results[name]]
        steps = results[name][0]["steps"]
        print("| %s | %d%s | %d | %.1f | %.0f (%.0f-%.0f) | %.2fx |" % (
            name, batch, " rows" if name == "packed" else "", steps, train_examples / steps, statistics.median(rates),
            min(rates), max(rates), statistics.median(rates) / base))


if __name__ == "__main__":
    main()

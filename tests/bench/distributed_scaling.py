#!/usr/bin/python3
"""Data-parallel scaling of `qlorad-tool train` (issue 20): 1 rank vs N local ranks (Gloo),
alternating runs, medians and min-max of tokens/s, all-reduce seconds and bytes per step.

  tests/bench/distributed_scaling.py [--reps 3] [--ranks 2] [--layers 4] [--hidden 512]

Model: Llama-shaped random weights (make-model, Llama-3 tokenizer), NF4 base, LoRA r=16 on all
seven projections, batch 8 (global), sequences <= 128 tokens of the UCI sentiment sentences.
The single rank runs with OpenBLAS on all cores; each of N ranks with cores/N threads, so
both use the same cores; ATen's intra-op threads are 1 in both (qlorad's default). Not part of ctest (minutes)."""

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


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--examples", type=int, default=320)
    a = p.parse_args()
    work = tempfile.mkdtemp(prefix="qlorad-dp-bench-")
    model = os.path.join(work, "model")
    subprocess.run([h.TOOL, "make-model", "--arch", "llama", "--layers", str(a.layers), "--hidden", str(a.hidden),
                    "--heads", "8", "--kv-heads", "8", "--intermediate", str(a.hidden * 8 // 3), "--vocab", "128256",
                    "--tie-embeddings", "--dtype", "f32", "--tokenizer",
                    os.path.join(h.NPM, "@lenml", "tokenizer-llama3", "models"), "--seed", "3", "--out", model],
                   check=True, stdout=subprocess.DEVNULL)
    data = h.write_sentiment(os.path.join(work, "data.jsonl"), limit=a.examples)
    subprocess.run([h.TOOL, "prepare-data", "--source", data, "--root", os.path.join(work, "ds"), "--id", "s",
                    "--format", "classification"], check=True, stdout=subprocess.DEVNULL)
    cores = os.cpu_count()
    results = {1: [], a.ranks: []}
    for rep in range(a.reps):
        for world in (1, a.ranks):
            out = os.path.join(work, "run-%d-%d" % (world, rep))
            # ATen intra-op threads stay at qlorad's default (1: more oversubscribes OpenBLAS, RESULTS.md
            # "Model runtime"); OpenBLAS gets the cores, split between the ranks.
            env = dict(os.environ, OPENBLAS_NUM_THREADS=str(max(1, cores // world)), QLORAD_THREADS="1")
            cmd = [h.TOOL, "train", "--model", model, "--dataset-root", os.path.join(work, "ds"), "--dataset", "s",
                   "--out", out, "--quantize", "nf4", "--epochs", "1", "--batch-size", "8", "--max-seq-len", "128",
                   "--r", "16", "--seed", "1", "--quiet"]
            if world > 1:
                cmd += ["--world-size", str(world)]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
            run = json.load(open(os.path.join(out, "training_run.json")))
            rate = run["tokens_seen"] / run["wall_seconds"]
            d = run["distributed"]
            results[world].append((rate, d["allreduce_seconds_per_step"], d["allreduce_bytes_per_step"], run["steps"],
                                   run["wall_seconds"]))
            print("rep %d world %d: %.0f tok/s, %d steps in %.1f s, all-reduce %.2f ms/step, %d bytes/step"
                  % (rep, world, rate, run["steps"], run["wall_seconds"], d["allreduce_seconds_per_step"] * 1e3,
                     d["allreduce_bytes_per_step"]), flush=True)
    print("\nmodel: %d layers, hidden %d; %d cores; %d reps each, alternating" % (a.layers, a.hidden, cores, a.reps))
    print("| ranks | tokens/s median (min-max) | all-reduce ms/step median | bytes/step | share of step time |")
    print("|---|---|---|---|---|")
    for world, rows in results.items():
        rates = [r[0] for r in rows]
        ms = statistics.median(r[1] for r in rows) * 1e3
        step_ms = statistics.median(r[4] / r[3] for r in rows) * 1e3
        print("| %d | %.0f (%.0f-%.0f) | %.2f | %d | %.1f %% of %.0f ms |" % (
            world, statistics.median(rates), min(rates), max(rates), ms, rows[0][2], 100 * ms / step_ms, step_ms))


if __name__ == "__main__":
    main()

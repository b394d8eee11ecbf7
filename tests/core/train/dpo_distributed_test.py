"""Data-parallel DPO over real Gloo process groups (issue 23), through `qlorad-tool train --method dpo`:
2 ranks x 2 pairs (`--world-size 2 --batch-size 4`) against 1 rank x 4 pairs, same seed, dropout 0.1,
NF4 base, also with gradient accumulation and a validation slice. The step losses and the validation DPO
losses agree within 1e-5 relative, the per-step reward margins within 1e-5 + 1e-3 relative, and the adapters within
1e-5 as a whole (1e-3 per tensor, see compare_adapters). Both sides are qlorad's: the reference is the
single-process loop, which differs from the sharded one only in the split and the all-reduce."""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.environ.get("QLORAD_SOURCE_DIR", "."), "tests", "e2e"))
import daemon_harness as h  # noqa: E402
from distributed_train_test import TOLERANCE, compare_losses, read_safetensors  # noqa: E402

import numpy as np  # noqa: E402


def compare_adapters(a_dir, b_dir, label):
    """||a - b|| / ||a|| <= 1e-5 over the whole adapter, and <= 1e-3 per tensor. The per-tensor
    bound is looser than SFT's (1e-4): DPO starts at a tie (every reward 0, σ' = 1/4 for every
    pair), so AdamW's first steps divide near-cancelling gradient elements by their own RMS and
    turn fp32 summation-order noise (4 rows in one GEMM vs 2 + 2 and an all-reduce) into
    visible relative changes of the smallest lora_B tensors."""
    a = read_safetensors(os.path.join(a_dir, "adapter_model.safetensors"))
    b = read_safetensors(os.path.join(b_dir, "adapter_model.safetensors"))
    if a.keys() != b.keys():
        print("%s: tensor names differ" % label)
        return False
    diff_sq = norm_sq = worst = 0.0
    for name in a:
        x, y = a[name].astype(np.float64), b[name].astype(np.float64)
        d = float(np.sum((x - y) ** 2))
        diff_sq, norm_sq = diff_sq + d, norm_sq + float(np.sum(x ** 2))
        worst = max(worst, d ** 0.5 / max(float(np.linalg.norm(x)), 1e-30))
    whole = diff_sq ** 0.5 / max(norm_sq ** 0.5, 1e-30)
    print("%s: %d tensors, ||a-b||/||a|| %.3g, worst tensor %.3g" % (label, len(a), whole, worst))
    return whole <= TOLERANCE and worst <= 100 * TOLERANCE


def main():
    work = tempfile.mkdtemp(prefix="qlorad-dpo-dist-")
    model = h.make_model(os.path.join(work, "model"))
    classified = h.write_sentiment(os.path.join(work, "imdb.jsonl"), limit=46)
    prefs = h.write_preferences(classified, os.path.join(work, "prefs.jsonl"))
    subprocess.run([h.TOOL, "prepare-data", "--source", prefs, "--root", os.path.join(work, "ds"), "--id", "prefs",
                    "--format", "preference", "--allow-small"], check=True, stdout=subprocess.DEVNULL)

    def train(out, extra=()):
        return [h.TOOL, "train", "--dataset-root", os.path.join(work, "ds"), "--dataset", "prefs", "--out", out,
                "--model", model, "--quantize", "nf4", "--method", "dpo", "--dpo-beta", "0.2", "--epochs", "1",
                "--batch-size", "4", "--max-seq-len", "96", "--r", "4", "--dropout", "0.1", "--lr", "1e-3",
                "--seed", "5"] + list(extra)

    env = dict(os.environ, QLORAD_THREADS="1")
    ok = True
    for label, extra in (("", []), ("grad-accum 2 + validation, ", ["--grad-accum", "2", "--eval-fraction", "0.2",
                                                                    "--eval-every", "2"])):
        one, two = os.path.join(work, "one" + str(len(extra))), os.path.join(work, "two" + str(len(extra)))
        subprocess.run(train(one, extra), check=True, stdout=subprocess.DEVNULL, env=env)
        subprocess.run(train(two, extra + ["--world-size", "2"]), check=True, stdout=subprocess.DEVNULL, env=env)
        r1 = json.load(open(os.path.join(one, "training_run.json")))
        r2 = json.load(open(os.path.join(two, "training_run.json")))
        print("%s2-rank record: distributed %s" % (label, json.dumps(r2["distributed"])))
        ok &= r2["distributed"]["world_size"] == 2 and r2["method"] == "dpo"
        ok &= compare_losses(one, two, "%s1 rank x 4 pairs vs 2 ranks x 2" % label, min_steps=3)
        ok &= compare_adapters(one, two, "%s1 rank x 4 pairs vs 2 ranks x 2" % label)
        # Margins, not accuracies: at step 1 every reward is 0 up to rounding, so "chosen > rejected" is a coin toss.
        m1, m2 = r1["dpo"]["step_reward_margins"], r2["dpo"]["step_reward_margins"]
        # A margin is β times a difference of ~20-nat log-prob sums: fp32 noise of ~1e-6 of those sums.
        worst = max(abs(x - y) for x, y in zip(m1, m2)) if m1 else 1.0
        print("%sstep reward margins %s; worst absolute difference %.2g" % (label, ["%.4f" % m for m in m1], worst))
        ok &= len(m1) == len(m2) > 0 and all(abs(x - y) <= 1e-5 + 1e-3 * abs(x) for x, y in zip(m1, m2))
        ev1, ev2 = r1["eval_losses"], r2["eval_losses"]
        ok &= len(ev1) == len(ev2) and all(abs(x - y) <= TOLERANCE * abs(x) for x, y in zip(ev1, ev2))
        if extra:
            ok &= len(ev1) > 0
    print("all data-parallel DPO checks passed" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

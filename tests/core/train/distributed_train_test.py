"""Data-parallel training over real Gloo process groups (issue 20), through `qlorad-tool train`.

1. Equivalence: 2 ranks x local batch 2 (`--world-size 2 --batch-size 4`) against 1 rank x
   batch 4 (also with gradient accumulation, and with --packing: 2 ranks x 1 pack vs 1 x 2), same seed, dropout 0.1, NF4 base: the step losses (10 steps) agree within 1e-5
   relative, and the adapter after them within 1e-5 relative (see compare_adapters). The reference is the single-process
   trainer, an independent code path from the sharded one only in the split and the
   all-reduce; both are qlorad's.
2. Fault: the 2-rank run with a checkpoint every step; rank 1 is SIGKILLed at a random step
   (seeded, printed). The launcher must fail naming rank 1; the same command run again resumes
   and ends with the adapter of the uninterrupted 2-rank run (same tolerance; bit-identity is
   reported).
3. Hang: rank 1 is SIGSTOPped; rank 0's collective times out after --collective-timeout and its
   error names rank 1 as the rank that did not reach the all-reduce.
"""

import json
import os
import random
import signal
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.environ.get("QLORAD_SOURCE_DIR", "."), "tests", "e2e"))
import daemon_harness as h  # noqa: E402

TOLERANCE = 1e-5


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", (name, info["dtype"])
        begin, end = info["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + begin:8 + n + end], dtype="<f4").reshape(info["shape"])
    return out


def compare_adapters(a_dir, b_dir, label):
    """The adapter as one vector: ||a - b|| / ||a|| <= 1e-5. Per tensor the same ratio must stay
    <= 1e-4: AdamW divides each gradient element by its running RMS, so an element whose
    gradient is a near-cancellation turns fp32 summation-order noise (one GEMM over 4 rows vs
    two over 2 rows + the all-reduce) into a relative change far above the noise; the worst
    tensor and element are printed."""
    a = read_safetensors(os.path.join(a_dir, "adapter_model.safetensors"))
    b = read_safetensors(os.path.join(b_dir, "adapter_model.safetensors"))
    assert a.keys() == b.keys(), "%s: tensor names differ" % label
    diff_sq = norm_sq = 0.0
    worst_tensor, worst_name, worst_element, identical = 0.0, "", 0.0, True
    for name in sorted(a):
        x, y = a[name].astype(np.float64), b[name].astype(np.float64)
        d = float(np.sum((x - y) ** 2))
        diff_sq, norm_sq = diff_sq + d, norm_sq + float(np.sum(x ** 2))
        rel = (d ** 0.5) / max(float(np.linalg.norm(x)), 1e-30)
        if rel > worst_tensor:
            worst_tensor, worst_name = rel, name
        worst_element = max(worst_element, float(np.abs(x - y).max()) / max(float(np.abs(x).max()), 1e-30))
        identical = identical and np.array_equal(a[name], b[name])
    whole = (diff_sq ** 0.5) / max(norm_sq ** 0.5, 1e-30)
    print("%s: %d tensors, ||a-b||/||a|| %.3g; worst tensor %.3g (%s); worst element (vs its tensor's max) %.3g%s"
          % (label, len(a), whole, worst_tensor, worst_name, worst_element, " (bit-identical)" if identical else ""))
    return whole <= TOLERANCE and worst_tensor <= 10 * TOLERANCE


def compare_losses(a_dir, b_dir, label, min_steps=10):
    a = json.load(open(os.path.join(a_dir, "training_run.json")))
    b = json.load(open(os.path.join(b_dir, "training_run.json")))
    la, lb = np.array(a["step_losses"]), np.array(b["step_losses"])
    if la.shape != lb.shape:
        print("%s: %d vs %d steps" % (label, len(la), len(lb)))
        return False
    worst = float((np.abs(la - lb) / np.maximum(np.abs(la), 1e-12)).max())
    print("%s: %d steps, losses %.4f -> %.4f, max relative difference %.3g" % (label, len(la), la[0], la[-1], worst))
    return len(la) >= min_steps and worst <= TOLERANCE


def rank_pids(launcher_pid):
    """{rank: pid} of the launcher's children, from their environment."""
    out = {}
    children = subprocess.run(["pgrep", "-P", str(launcher_pid)], capture_output=True, text=True).stdout.split()
    for pid in children:
        try:
            env = open("/proc/%s/environ" % pid, "rb").read().split(b"\0")
        except OSError:
            continue
        for item in env:
            if item.startswith(b"RANK="):
                out[int(item[5:])] = int(pid)
    return out


def run_until_step(cmd, env, target, action):
    """Starts `cmd`, applies action(rank_pids) once rank 0 reports step >= target; returns (rc, stderr)."""
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    acted = False
    for line in child.stdout:
        if not acted and line.startswith("step ") and int(line.split()[1].split("/")[0]) >= target:
            action(rank_pids(child.pid))
            acted = True
    err = child.stderr.read()
    child.wait()
    return child.returncode, err, acted


def main():
    work = tempfile.mkdtemp(prefix="qlorad-dist-")
    model = h.make_model(os.path.join(work, "model"))
    data = h.write_sentiment(os.path.join(work, "imdb.jsonl"), limit=46)
    subprocess.run([h.TOOL, "prepare-data", "--source", data, "--root", os.path.join(work, "ds"), "--id", "imdb",
                    "--format", "classification", "--allow-small"], check=True, stdout=subprocess.DEVNULL)

    def train(out, extra=(), checkpoints=None):
        cmd = [h.TOOL, "train", "--dataset-root", os.path.join(work, "ds"), "--dataset", "imdb", "--out", out,
               "--model", model, "--quantize", "nf4", "--epochs", "1", "--batch-size", "4", "--max-seq-len", "96",
               "--r", "4", "--dropout", "0.1", "--seed", "5"] + list(extra)
        if checkpoints:
            cmd += ["--checkpoint-dir", checkpoints, "--checkpoint-every", "1"]
        return cmd

    env = dict(os.environ, QLORAD_THREADS="1")
    ok = True
    one = os.path.join(work, "one-rank")
    subprocess.run(train(one), check=True, stdout=subprocess.DEVNULL, env=env)
    two = os.path.join(work, "two-ranks")
    subprocess.run(train(two, ["--world-size", "2"]), check=True, stdout=subprocess.DEVNULL, env=env)
    record = json.load(open(os.path.join(two, "training_run.json")))["distributed"]
    print("2-rank run record: %s" % json.dumps(record))
    ok &= record["world_size"] == 2 and record["backend"] == "gloo" and record["allreduce_bytes_per_step"] > 0
    ok &= compare_losses(one, two, "1 rank x 4 vs 2 ranks x 2")
    ok &= compare_adapters(one, two, "1 rank x 4 vs 2 ranks x 2")

    # Gradient accumulation (2 micro-batches per step) and a validation slice, sharded the same way.
    accum = ["--grad-accum", "2", "--eval-fraction", "0.2", "--eval-every", "2"]
    one_acc, two_acc = os.path.join(work, "one-accum"), os.path.join(work, "two-accum")
    subprocess.run(train(one_acc, accum), check=True, stdout=subprocess.DEVNULL, env=env)
    subprocess.run(train(two_acc, accum + ["--world-size", "2"]), check=True, stdout=subprocess.DEVNULL, env=env)
    ev1 = json.load(open(os.path.join(one_acc, "training_run.json")))["eval_losses"]
    ev2 = json.load(open(os.path.join(two_acc, "training_run.json")))["eval_losses"]
    print("grad-accum 2 + validation: eval losses %s vs %s" % (["%.5f" % x for x in ev1], ["%.5f" % x for x in ev2]))
    ok &= len(ev1) > 0 and len(ev1) == len(ev2) and max(abs(x - y) / abs(x) for x, y in zip(ev1, ev2)) <= TOLERANCE
    ok &= compare_losses(one_acc, two_acc, "grad-accum 2, 1 rank vs 2 ranks", min_steps=3)
    ok &= compare_adapters(one_acc, two_acc, "grad-accum 2, 1 rank vs 2 ranks")

    # Sample packing: packs (rows of several examples) are sharded, dropout masks drawn per pack.
    packed = ["--packing", "--batch-size", "2"]
    one_packed, two_packed = os.path.join(work, "one-packed"), os.path.join(work, "two-packed")
    subprocess.run(train(one_packed, packed), check=True, stdout=subprocess.DEVNULL, env=env)
    subprocess.run(train(two_packed, packed + ["--world-size", "2"]), check=True, stdout=subprocess.DEVNULL, env=env)
    ok &= compare_losses(one_packed, two_packed, "packing, 1 rank x 2 packs vs 2 ranks x 1", min_steps=3)
    ok &= compare_adapters(one_packed, two_packed, "packing, 1 rank x 2 packs vs 2 ranks x 1")

    seed = int(os.environ.get("QLORAD_KILL_SEED", str(int(time.time()))))
    target = random.Random(seed).randint(2, 8)
    print("kill seed %d: SIGKILL rank 1 at step %d" % (seed, target))
    resumed, ckpt = os.path.join(work, "resumed"), os.path.join(work, "ckpt")
    rc, err, acted = run_until_step(train(resumed, ["--world-size", "2"], ckpt), env, target,
                                    lambda pids: os.kill(pids[1], signal.SIGKILL))
    named = "rank 1 of 2 was killed by signal 9" in err
    print("killed run: exit %d, launcher names rank 1: %s" % (rc, named))
    if not (acted and rc != 0 and named):
        print("FAILED: stderr was:\n" + err)
        ok = False
    final = subprocess.run(train(resumed, ["--world-size", "2"], ckpt), check=True, capture_output=True, text=True,
                           env=env)
    first = next((l for l in final.stdout.splitlines() if l.startswith("step ")), "")
    print("restarted run began at: %s" % first)
    ok &= first.startswith("step ") and not first.startswith("step 1/")
    ok &= compare_adapters(two, resumed, "2 ranks uninterrupted vs killed + resumed")

    hung = os.path.join(work, "hung")
    rc, err, acted = run_until_step(train(hung, ["--world-size", "2", "--collective-timeout", "4"]), env, 2,
                                    lambda pids: os.kill(pids[1], signal.SIGSTOP))
    names_laggard = "rank 1 did not reach it" in err
    print("hung run: exit %d, rank 0's error names rank 1: %s" % (rc, names_laggard))
    if not (acted and rc != 0 and names_laggard):
        print("FAILED: stderr was:\n" + err)
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

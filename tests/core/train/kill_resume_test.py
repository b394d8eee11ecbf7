"""Kill at a random step: `qlorad-tool train` runs as a child process with a checkpoint every
step, is killed with SIGKILL at a random point (seeded, printed), and the same command is run
again: it resumes from the newest valid checkpoint and must end with an adapter bit-identical
to an uninterrupted run's (CPU, same thread count)."""

import os
import random
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.environ.get("QLORAD_SOURCE_DIR", "."), "tests", "e2e"))
import daemon_harness as h  # noqa: E402


def main():
    work = tempfile.mkdtemp(prefix="qlorad-kill-")
    model = h.make_model(os.path.join(work, "model"))
    data = h.write_sentiment(os.path.join(work, "imdb.jsonl"), limit=400)
    subprocess.run([h.TOOL, "prepare-data", "--source", data, "--root", os.path.join(work, "ds"), "--id", "imdb",
                    "--format", "classification"], check=True, stdout=subprocess.DEVNULL)

    def train(out, checkpoints):
        return [h.TOOL, "train", "--dataset-root", os.path.join(work, "ds"), "--dataset", "imdb", "--out", out,
                "--model", model, "--quantize", "nf4", "--epochs", "2", "--batch-size", "8", "--max-seq-len", "128",
                "--r", "4", "--dropout", "0.1", "--seed", "3", "--checkpoint-dir", checkpoints, "--checkpoint-every", "1"]

    env = dict(os.environ, QLORAD_THREADS="1")
    reference = os.path.join(work, "reference")
    subprocess.run(train(reference, os.path.join(work, "ref-ckpt")), check=True, stdout=subprocess.DEVNULL, env=env)
    seed = int(os.environ.get("QLORAD_KILL_SEED", str(int(time.time()))))
    rng = random.Random(seed)
    resumed = os.path.join(work, "resumed")
    checkpoints = os.path.join(work, "ckpt")
    kills = 0
    for _ in range(2):  # two kills at random steps, then a run to the end
        target = rng.randint(3, 60)
        child = subprocess.Popen(train(resumed, checkpoints), stdout=subprocess.PIPE, text=True, env=env)
        for line in child.stdout:
            if line.startswith("step ") and int(line.split()[1].split("/")[0]) >= target:
                child.send_signal(signal.SIGKILL)
                kills += 1
                break
        child.wait()
    final = subprocess.run(train(resumed, checkpoints), check=True, capture_output=True, text=True, env=env)
    first_step = next((l for l in final.stdout.splitlines() if l.startswith("step ")), "(none: already complete)")
    print("kill seed %d, %d kills; the last run started at: %s" % (seed, kills, first_step))
    with open(os.path.join(reference, "adapter_model.safetensors"), "rb") as a, \
            open(os.path.join(resumed, "adapter_model.safetensors"), "rb") as b:
        same = a.read() == b.read()
    if kills == 0 or not first_step.startswith("step ") or first_step.startswith("step 1/") or not same:
        print("FAILED: kills %d, first step %r, identical adapter %s" % (kills, first_step, same))
        return 1
    print("resumed adapter is bit-identical to the uninterrupted run")
    return 0


if __name__ == "__main__":
    sys.exit(main())

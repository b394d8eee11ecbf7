"""qlorad-tool on a Mistral model whose config.json declares sliding_window 16:
`logits` and `generate` within the window work, past it they are refused with an
error naming sliding_window (qlorad attends to the full context, which equals
windowed attention only up to the window). The same model with sliding_window
null has no such limit."""
import json
import os
import subprocess
import sys
import tempfile

TOOL = os.environ.get("QLORAD_TOOL") or sys.exit("QLORAD_TOOL is not set (run through ctest)")
FAILURES = []


def run(args):
    return subprocess.run([TOOL] + args, capture_output=True, text=True)


def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what)
    if not ok:
        FAILURES.append(what)


def set_window(model, window):
    path = os.path.join(model, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    cfg["sliding_window"] = window
    with open(path, "w") as f:
        json.dump(cfg, f)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "model")
        made = run(["make-model", "--arch", "mistral", "--layers", "2", "--hidden", "64", "--heads", "4", "--kv-heads", "2",
                    "--intermediate", "128", "--vocab", "300", "--seed", "4", "--out", model])
        if made.returncode != 0:
            raise SystemExit(made.stderr)
        out = os.path.join(tmp, "logits.bin")
        tokens = lambda n: ",".join(str(1 + i) for i in range(n))  # noqa: E731
        set_window(model, 16)
        ok = run(["logits", "--model", model, "--tokens", tokens(16), "--out", out])
        check(ok.returncode == 0, "logits: 16 tokens within sliding_window 16")
        bad = run(["logits", "--model", model, "--tokens", tokens(17), "--out", out])
        check(bad.returncode != 0 and "sliding_window 16" in bad.stderr, "logits: 17 tokens refused: " + bad.stderr.strip())
        gen = run(["generate", "--model", model, "--prompt-tokens", tokens(12), "--max-tokens", "4"])
        check(gen.returncode == 0, "generate: 12 + 4 tokens within the window")
        gen = run(["generate", "--model", model, "--prompt-tokens", tokens(13), "--max-tokens", "4"])
        check(gen.returncode != 0 and "sliding_window 16" in gen.stderr, "generate: 13 + 4 refused: " + gen.stderr.strip())
        set_window(model, None)
        free = run(["logits", "--model", model, "--tokens", tokens(40), "--out", out])
        check(free.returncode == 0, "sliding_window null: 40 tokens computed")
    print("FAILED: " + "; ".join(FAILURES) if FAILURES else "all passed")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())

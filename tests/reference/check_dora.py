"""DoRA (issue 23) against a float64 reference of PEFT's formula.

For every adapted module, with W0 the base weight the adapter was trained over (NF4: dequantized
by nf4_reference.py), s = alpha / r and m the adapter's lora_magnitude_vector:
    W' = m / ||W0 + s*B@A||_row * (W0 + s*B@A)
and the model's logits are llama_reference.py run on those W'.

  trained   `qlorad-tool train --dora --quantize nf4` (lr high enough that B and m move): the
            file holds PEFT's keys (<module>.lora_magnitude_vector, [out]) and use_dora; the logits
            of `qlorad-tool logits --quantize nf4 --adapter` equal the float64 reference within 1e-4
            (max |diff| / max |ref|); `qlorad-tool merge` writes W' within 1e-5.
  written   an adapter written here by hand (struct + json, not qlorad's writer), random A, B and
            m, one module's magnitude under the older key <module>.lora_magnitude_vector.weight,
            on a dense bf16 base: logits against the reference within 1e-4.
  refused   GGUF export of a DoRA adapter (it cannot express the magnitude).
"""
import json
import os
import struct
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_reference  # noqa: E402
from reference_checks import (PEFT_PREFIX, PROJ, TOOL, check, finish, nf4_quant, projection_modules, rel, run,  # noqa: E402
                              tiny_model_and_toy_dataset)

TOKENS = [1, 17, 923, 4000, 77, 128000, 5]








def dora_weights(cfg, original, adapter_dir, quantized):
    """float64 weights with every adapted module replaced by PEFT's DoRA W'."""
    with open(os.path.join(adapter_dir, "adapter_config.json")) as f:
        acfg = json.load(f)
    scale = acfg["lora_alpha"] / acfg["r"]
    tensors = llama_reference.read_safetensors(os.path.join(adapter_dir, "adapter_model.safetensors"))
    weights = {k: v.double() for k, v in original.items()}
    for module in projection_modules(cfg):
        w0 = nf4_quant(original[module + ".weight"].float())[1].double() if quantized else weights[module + ".weight"]
        a = tensors.get(f"{PEFT_PREFIX}{module}.lora_A.weight")
        if a is None:
            weights[module + ".weight"] = w0
            continue
        b = tensors[f"{PEFT_PREFIX}{module}.lora_B.weight"].double()
        m = tensors.get(f"{PEFT_PREFIX}{module}.lora_magnitude_vector")
        if m is None:
            m = tensors[f"{PEFT_PREFIX}{module}.lora_magnitude_vector.weight"]
        direction = w0 + scale * (b @ a.double())
        weights[module + ".weight"] = (m.double() / direction.norm(dim=1)).unsqueeze(1) * direction
    return weights, tensors, acfg


def qlorad_logits(tmp, *model_args):
    out = os.path.join(tmp, "logits.bin")
    run([TOOL, "logits", *model_args, "--tokens", ",".join(map(str, TOKENS)), "--out", out])
    with open(out, "rb") as f:
        return torch.frombuffer(bytearray(f.read()), dtype=torch.float32).reshape(len(TOKENS), -1).double()




def write_adapter(path, cfg, targets, r=4, alpha=8.0, seed=5):
    """A PEFT DoRA adapter written by hand: random A, B and magnitudes near the row norms."""
    gen = torch.Generator().manual_seed(seed)
    original = llama_reference.read_checkpoint(os.path.dirname(path) + "/dense")
    tensors = {}
    for i in range(cfg["num_hidden_layers"]):
        for proj in PROJ:
            if proj.split(".")[1] not in targets:
                continue
            module = f"model.layers.{i}.{proj}"
            w = original[module + ".weight"].float()
            tensors[f"{PEFT_PREFIX}{module}.lora_A.weight"] = torch.randn(r, w.shape[1], generator=gen) / w.shape[1] ** 0.5
            tensors[f"{PEFT_PREFIX}{module}.lora_B.weight"] = torch.randn(w.shape[0], r, generator=gen) * 0.2
            key = ".lora_magnitude_vector.weight" if (i, proj) == (0, "self_attn.q_proj") else ".lora_magnitude_vector"
            tensors[f"{PEFT_PREFIX}{module}{key}"] = w.norm(dim=1) * (0.5 + torch.rand(w.shape[0], generator=gen))
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, t in tensors.items():
        data = t.contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    os.makedirs(path)
    with open(os.path.join(path, "adapter_model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    with open(os.path.join(path, "adapter_config.json"), "w") as f:
        json.dump({"peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": "dense", "r": r,
                   "lora_alpha": alpha, "lora_dropout": 0.0, "target_modules": sorted(targets), "bias": "none",
                   "use_rslora": False, "use_dora": True, "modules_to_save": None, "fan_in_fan_out": False,
                   "inference_mode": True}, f)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        base, cfg = tiny_model_and_toy_dataset(tmp, seed=12)
        original = llama_reference.read_checkpoint(base)
        adapter = os.path.join(tmp, "dora")
        run([TOOL, "train", "--model", base, "--dataset-root", os.path.join(tmp, "ds"), "--dataset", "toy", "--out",
             adapter, "--quantize", "nf4", "--dora", "--prompt-format", "alpaca", "--epochs", "2", "--batch-size", "8",
             "--lr", "2e-2", "--r", "4", "--alpha", "8", "--targets", "q_proj,v_proj,down_proj", "--quiet"])
        weights, tensors, acfg = dora_weights(cfg, original, adapter, quantized=True)
        mags = {k: v for k, v in tensors.items() if k.endswith(".lora_magnitude_vector")}
        check(acfg.get("use_dora") is True and len(mags) == 6,
              f"adapter_config use_dora and one PEFT-keyed magnitude per module ({len(mags)})")
        moved = [(m.double() - nf4_quant(original[k[len(PEFT_PREFIX):-len('.lora_magnitude_vector')] + '.weight'].float())[1]
                  .double().norm(dim=1)).abs().max().item() for k, m in mags.items()]
        check(min(moved) > 1e-4, f"training moved every magnitude off ||W0|| (min max-change {min(moved):.2e})")
        ref = llama_reference.logits_from_weights(cfg, weights, TOKENS)
        served = qlorad_logits(tmp, "--model", base, "--quantize", "nf4", "--adapter", adapter)
        check(rel(served, ref) < 1e-4, f"trained DoRA adapter: qlorad logits = float64 PEFT formula (rel {rel(served, ref):.2e})")
        plain = llama_reference.logits_from_weights(
            cfg, {k: (nf4_quant(v.float())[1].double() if k.endswith("proj.weight") else v) for k, v in original.items()},
            TOKENS)
        check(rel(plain, ref) > 1e-3, f"the adapter changes the logits (rel {rel(plain, ref):.2e} from the base)")

        merged = os.path.join(tmp, "merged")
        run([TOOL, "merge", "--model", base, "--adapter", adapter, "--out", merged])
        written = llama_reference.read_checkpoint(merged)
        worst = max(rel(written[k].double(), weights[k]) for k in weights if k.endswith("proj.weight"))
        check(worst < 1e-5, f"qlorad-tool merge writes PEFT's DoRA weights (worst rel {worst:.2e})")

        dense = os.path.join(tmp, "dense")
        run([TOOL, "make-model", "--arch", "llama", "--layers", "2", "--hidden", "64", "--heads", "4", "--kv-heads", "2",
             "--intermediate", "128", "--vocab", "300", "--dtype", "bf16", "--seed", "13", "--out", dense])
        with open(os.path.join(dense, "config.json")) as f:
            dcfg = json.load(f)
        handmade = os.path.join(tmp, "handmade")
        write_adapter(handmade, dcfg, {"q_proj", "k_proj", "up_proj", "down_proj"})
        hweights, _, _ = dora_weights(dcfg, llama_reference.read_checkpoint(dense), handmade, quantized=False)
        tokens = [t % 300 for t in TOKENS]
        out = os.path.join(tmp, "hlogits.bin")
        run([TOOL, "logits", "--model", dense, "--adapter", handmade, "--tokens", ",".join(map(str, tokens)), "--out", out])
        with open(out, "rb") as f:
            got = torch.frombuffer(bytearray(f.read()), dtype=torch.float32).reshape(len(tokens), -1).double()
        href = llama_reference.logits_from_weights(dcfg, hweights, tokens)
        check(rel(got, href) < 1e-4, f"hand-written DoRA adapter: logits = float64 reference (rel {rel(got, href):.2e})")

        gguf = run([TOOL, "export-gguf", "--model", base, "--adapter", adapter, "--out", os.path.join(tmp, "a.gguf")],
                   expect_ok=False)
        check(gguf.returncode != 0 and "DoRA" in gguf.stderr, f"GGUF export refuses DoRA ({gguf.stderr.strip()[-120:]})")
    finish("DoRA")


if __name__ == "__main__":
    main()

"""End-to-end NF4 model check against independent references.

1. `qlorad-tool quantize` writes a bitsandbytes-layout checkpoint; this script
   parses it by hand, checks the layout (key names, packed shape [(n+1)/2, 1],
   quant_state JSON fields, code book), dequantizes every weight with
   nf4_reference.py (bitsandbytes' algorithm: double-quant absmax, then
   code[idx] * absmax) and checks the codes equal a fresh quantization of the
   original weights.
2. The logits of `qlorad-tool logits` on the pre-quantized checkpoint and with
   `--quantize nf4` on the original must both match llama_reference.py run on
   the dequantized weights within 1e-4 relative.
"""
import json
import os
import subprocess
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_reference  # noqa: E402
import nf4_reference  # noqa: E402

TOOL = os.environ.get("QLORAD_TOOL") or sys.exit("QLORAD_TOOL is not set (run through ctest)")
PROJ = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
        "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]
failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)


def run(args):
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"command failed: {' '.join(args)}\n{proc.stderr}")


def dequantize(tensors, name, original):
    state = json.loads(bytes(tensors[name + ".quant_state.bitsandbytes__nf4"].tolist()).decode())
    shape, n = state["shape"], original.numel()
    check(state["quant_type"] == "nf4" and state["blocksize"] == 64, f"{name}: quant_state {state}")
    check(state["dtype"] == "bfloat16" and state.get("nested_dtype") == "float32", f"{name}: dtypes {state}")
    packed = tensors[name]
    check(list(packed.shape) == [(n + 1) // 2, 1] and packed.dtype == torch.uint8, f"{name}: packed {packed.shape}")
    check(torch.equal(tensors[name + ".quant_map"], nf4_reference.NF4_CODE), f"{name}: quant_map is not NF4")
    absmax = nf4_reference.dequantize_double_quant(
        tensors[name + ".absmax"], tensors[name + ".nested_absmax"],
        torch.tensor(state["nested_offset"], dtype=torch.float32), state["nested_blocksize"])
    # Independent quantization of the original must give the same codes.
    ref_packed, ref_absmax = nf4_reference.quantize_4bit(original.reshape(-1).to(torch.float32), 64, "nf4")
    check(torch.equal(packed.reshape(-1), ref_packed), f"{name}: packed codes differ from the reference")
    ref_q, ref_nested, _ = nf4_reference.double_quantize(ref_absmax)
    check(torch.equal(tensors[name + ".absmax"], ref_q), f"{name}: double-quant codes differ")
    check(torch.equal(tensors[name + ".nested_absmax"], ref_nested), f"{name}: nested absmax differs")
    w = nf4_reference.dequantize_4bit(packed.reshape(-1), absmax, n, 64, "nf4")
    return w.reshape(shape)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "bf16"), os.path.join(tmp, "nf4")
        run([TOOL, "make-model", "--arch", "llama", "--layers", "2", "--hidden", "128", "--heads", "4",
             "--kv-heads", "2", "--intermediate", "352", "--vocab", "211", "--dtype", "bf16", "--seed", "5",
             "--out", src])
        run([TOOL, "quantize", "--model", src, "--out", dst])
        with open(os.path.join(dst, "config.json")) as f:
            cfg = json.load(f)
        qc = cfg.get("quantization_config", {})
        check(qc.get("quant_method") == "bitsandbytes" and qc.get("load_in_4bit") and
              qc.get("bnb_4bit_quant_type") == "nf4" and qc.get("bnb_4bit_use_double_quant"),
              f"quantization_config: {qc}")
        original = llama_reference.read_checkpoint(src)
        tensors = llama_reference.read_checkpoint(dst)
        weights = {}
        for name, t in original.items():
            module = name.rsplit(".", 1)[0]
            if any(module.endswith(p) for p in PROJ) and name.endswith(".weight"):
                weights[name] = dequantize(tensors, name, t)
            else:
                check(torch.equal(tensors[name], t), f"{name}: not copied unchanged")
                weights[name] = t
        tokens = torch.randint(0, 211, (19,), generator=torch.Generator().manual_seed(3)).tolist()
        ref = llama_reference.logits_from_weights(cfg, weights, tokens)
        for label, model, extra in (("pre-quantized checkpoint", dst, []),
                                    ("quantized while loading", src, ["--quantize", "nf4"])):
            out = os.path.join(tmp, "logits.bin")
            run([TOOL, "logits", "--model", model, "--tokens", ",".join(map(str, tokens)), "--out", out, *extra])
            with open(out, "rb") as f:
                got = torch.frombuffer(bytearray(f.read()), dtype=torch.float32).reshape(len(tokens), 211).double()
            err = ((got - ref).abs().max() / ref.abs().max()).item()
            print(f"{label:28s} rel err {err:.2e}")
            check(err <= 1e-4, f"{label}: relative error {err:.3e} > 1e-4")
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        return 1
    print("2 passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

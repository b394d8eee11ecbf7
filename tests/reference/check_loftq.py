"""LoftQ and PiSSA initialisation (issue 23) against independent float64 references.

`qlorad-tool train --lora-init loftq|pissa` runs with a learning rate of 1e-12, so the adapter it
writes is its step-0 initialisation (moved by ~1e-11), and base_model/ beside it is the base it
was trained over. W is read from the original checkpoint by hand; codes are checked with
nf4_reference.py (bitsandbytes' algorithm) and factors against torch.linalg.svd in float64.

  loftq, 1 round   base_model's codes = nf4_reference's quantization of W, bit for bit;
                   ||W - Q - s*BA|| = the Eckart-Young optimum ||W - Q - SVD_r(W - Q)|| (1e-4 rel.)
                   and < ||W - Q||.
  loftq, 2 rounds  base_model's codes = nf4_reference's quantization of W - s*B1A1, with B1A1 the
                   1-round adapter's (<= 1e-4 of the codes may differ: fp32 vs float64 rounding at
                   a decision threshold); the error is again the optimum for its Q.
  pissa (dense)    base + s*BA = W (1e-5 rel.) and s*BA = SVD_r(W) (optimal error norm).
  logits           `qlorad-tool logits --model base_model --adapter A` = llama_reference on
                   dequant(Q) + s*BA within 1e-4 rel., and closer to W's logits than plain NF4's.
  refusals         loftq with --quantize none; loftq from a pre-quantized checkpoint.
"""
import json
import os
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_reference  # noqa: E402
import nf4_reference  # noqa: E402
from reference_checks import (PEFT_PREFIX, TOOL, check, finish, nf4_quant, projection_modules, rel, run,  # noqa: E402
                              tiny_model_and_toy_dataset)

TARGETS = ["q_proj", "v_proj", "down_proj"]
R, ALPHA = 4, 8.0
SCALE = ALPHA / R






def targeted(module):
    return module.rsplit(".", 1)[1] in TARGETS


def train(tmp, base, out, *extra, expect_ok=True):
    return run([TOOL, "train", "--model", base, "--dataset-root", os.path.join(tmp, "ds"), "--dataset", "toy",
                "--out", out, "--prompt-format", "alpaca", "--epochs", "1", "--batch-size", "16", "--lr", "1e-12",
                "--r", str(R), "--alpha", str(ALPHA), "--dropout", "0", "--targets", ",".join(TARGETS), "--quiet",
                *extra], expect_ok)


def bnb_codes_and_dequant(tensors, name):
    """(packed codes, float32 dequantized weight) of one bitsandbytes NF4 tensor group."""
    state = json.loads(bytes(tensors[name + ".quant_state.bitsandbytes__nf4"].tolist()).decode())
    absmax = nf4_reference.dequantize_double_quant(
        tensors[name + ".absmax"], tensors[name + ".nested_absmax"],
        torch.tensor(state["nested_offset"], dtype=torch.float32), state["nested_blocksize"])
    packed = tensors[name].reshape(-1)
    n = 1
    for d in state["shape"]:
        n *= d
    return packed, nf4_reference.dequantize_4bit(packed, absmax, n, state["blocksize"], "nf4").reshape(state["shape"])




def read_adapter(path):
    tensors = llama_reference.read_safetensors(os.path.join(path, "adapter_model.safetensors"))
    out = {}
    for key, a in tensors.items():
        if key.endswith(".lora_A.weight"):
            module = key[len(PEFT_PREFIX):-len(".lora_A.weight")]
            out[module] = (a.double(), tensors[key.replace("lora_A", "lora_B")].double())
    return out


def optimal_error(residual):
    """||residual - SVD_r(residual)|| in float64 (Eckart-Young)."""
    s = torch.linalg.svdvals(residual.double())
    return s[R:].pow(2).sum().sqrt().item()




def check_loftq_round(name, original, adapter_dir, expected_codes):
    """Per-module checks of one LoftQ adapter; returns {module: s*BA} and the dequantized bases."""
    base_dir = os.path.join(adapter_dir, "base_model")
    written = llama_reference.read_checkpoint(base_dir)
    adapter = read_adapter(adapter_dir)
    check(sorted(adapter) == sorted(m for m in projection_modules(CFG) if targeted(m)), f"{name}: adapter covers the targets")
    deltas, bases, gain = {}, {}, []
    for module, (a, b) in sorted(adapter.items()):
        w = original[module + ".weight"].double()
        codes, q = bnb_codes_and_dequant(written, module + ".weight")
        expected = expected_codes(module)
        mismatched = (codes != expected).sum().item() / codes.numel()
        check(mismatched <= 1e-4, f"{name} {module}: codes match nf4_reference ({mismatched:.2e} differ)")
        delta = SCALE * (b @ a)
        err = (w - q.double() - delta).norm().item()
        best = optimal_error(w - q.double())
        check(abs(err - best) <= 1e-4 * best, f"{name} {module}: ||W-Q-sBA|| {err:.6g} = optimum {best:.6g}")
        plain = (w - nf4_quant(original[module + ".weight"].float())[1].double()).norm().item()
        gain.append(plain / err)
        deltas[module], bases[module] = delta, q.double()
    check(min(gain) > 1.0, f"{name}: every module's error is below plain NF4's (factors {min(gain):.4f}..{max(gain):.4f})")
    return deltas, bases


def main():
    global CFG
    with tempfile.TemporaryDirectory() as tmp:
        base, CFG = tiny_model_and_toy_dataset(tmp, seed=9)
        original = llama_reference.read_checkpoint(base)

        one, two = os.path.join(tmp, "loftq1"), os.path.join(tmp, "loftq2")
        train(tmp, base, one, "--quantize", "nf4", "--lora-init", "loftq", "--loftq-iterations", "1")
        with open(os.path.join(one, "adapter_config.json")) as f:
            acfg = json.load(f)
        check(acfg["base_model_name_or_path"] == os.path.join(one, "base_model") and acfg["init_lora_weights"] is True,
              f"adapter_config names its own base and init_lora_weights true ({acfg['base_model_name_or_path']})")
        with open(os.path.join(one, "training_run.json")) as f:
            init = json.load(f)["base_model"].get("initialized", {})
        step0 = init.get("step0_error", {})
        check(init.get("init") == "loftq" and step0.get("error_reduction_factor", 0) > 1.0,
              f"training_run.json records the init and its step-0 error ({step0})")
        deltas1, _ = check_loftq_round("loftq 1 round", original, one,
                                       lambda m: nf4_quant(original[m + ".weight"].float())[0])

        train(tmp, base, two, "--quantize", "nf4", "--lora-init", "loftq", "--loftq-iterations", "2")
        deltas2, bases2 = check_loftq_round(
            "loftq 2 rounds", original, two,
            lambda m: nf4_quant((original[m + ".weight"].double() - deltas1[m]).float())[0])

        # Served logits over the written base against the float64 reference.
        tokens = [1, 17, 923, 4000, 77, 128000, 5]
        out = os.path.join(tmp, "logits.bin")
        run([TOOL, "logits", "--model", os.path.join(two, "base_model"), "--adapter", two,
             "--tokens", ",".join(map(str, tokens)), "--out", out])
        with open(out, "rb") as f:
            served = torch.frombuffer(bytearray(f.read()), dtype=torch.float32).reshape(len(tokens), -1).double()
        loftq_w, plain_w = dict(original), dict(original)
        for m in projection_modules(CFG):
            plain_w[m + ".weight"] = nf4_quant(original[m + ".weight"].float())[1]
            loftq_w[m + ".weight"] = bases2[m] + deltas2[m] if m in deltas2 else plain_w[m + ".weight"]
        ref = llama_reference.logits_from_weights(CFG, loftq_w, tokens)
        exact = llama_reference.logits_from_weights(CFG, original, tokens)
        plain = llama_reference.logits_from_weights(CFG, plain_w, tokens)
        check(rel(served, ref) < 1e-4, f"served LoftQ logits = float64 reference (rel {rel(served, ref):.2e})")
        check(rel(ref, exact) < rel(plain, exact),
              f"LoftQ logits are closer to W's than plain NF4's ({rel(ref, exact):.3e} < {rel(plain, exact):.3e})")

        pissa = os.path.join(tmp, "pissa")
        train(tmp, base, pissa, "--quantize", "none", "--lora-init", "pissa")
        residual = llama_reference.read_checkpoint(os.path.join(pissa, "base_model"))
        for module, (a, b) in sorted(read_adapter(pissa).items()):
            w = original[module + ".weight"].double()
            rebuilt = residual[module + ".weight"].double() + SCALE * (b @ a)
            check(rel(rebuilt, w) < 1e-5, f"pissa {module}: residual + s*BA = W (rel {rel(rebuilt, w):.1e})")
            err, best = (w - SCALE * (b @ a)).norm().item(), optimal_error(w)
            check(abs(err - best) <= 1e-4 * best, f"pissa {module}: s*BA is the top-{R} singular part")

        bad = train(tmp, base, os.path.join(tmp, "bad1"), "--quantize", "none", "--lora-init", "loftq",
                    expect_ok=False)
        check(bad.returncode != 0 and "lora.init" in bad.stderr and not os.path.exists(os.path.join(tmp, "bad1")),
              f"loftq on a dense base is refused naming lora.init ({bad.stderr.strip()[-160:]})")
        prequantized = os.path.join(tmp, "prequantized")
        run([TOOL, "quantize", "--model", base, "--out", prequantized])
        bad = train(tmp, prequantized, os.path.join(tmp, "bad2"), "--quantize", "nf4", "--lora-init", "loftq",
                    expect_ok=False)
        check(bad.returncode != 0 and "stores it 4-bit" in bad.stderr,
              f"loftq from a pre-quantized checkpoint is refused ({bad.stderr.strip()[-160:]})")
    finish("LoftQ/PiSSA")


if __name__ == "__main__":
    main()

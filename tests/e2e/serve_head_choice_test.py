"""`qlorad-tool choose-serve-head` (issue 18) on real files: a model written by qlorad-tool
make-model with the packaged Llama-2 tokenizer (its head cut down to the two label tokens, so
that it answers labels), a classification dataset prepared by
prepare-data from the UCI sentiment sentences, its hold-out decoded with every head.

Checked independently of qlorad's metric code: each head's macro-F1 is recomputed with
scikit-learn from the --predictions lines, each predicted label from the continuation text
by the documented rule, and the chosen head against the documented tolerance rule on the
report's own numbers. Bad flags fail with the flag named."""
import json
import os
import struct
import subprocess
import sys
import tempfile

from sklearn.metrics import f1_score

TOOL = os.environ["QLORAD_TOOL"]
SOURCE = os.environ["QLORAD_SOURCE_DIR"]
FIXTURES = os.path.join(SOURCE, "tests", "fixtures", "npm", "node_modules")
TOKENIZER = os.path.join(FIXTURES, "@lenml", "tokenizer-llama2", "models")
failures = []


def check(cond, msg):
    print(("ok   " if cond else "FAIL ") + msg)
    if not cond:
        failures.append(msg)


def run(*argv, ok=True):
    r = subprocess.run([TOOL, *argv], capture_output=True, text=True, timeout=600)
    if ok and r.returncode != 0:
        sys.exit("failed: %s\n%s%s" % (" ".join(argv), r.stdout[-2000:], r.stderr[-2000:]))
    return r


def expected_label(continuation, labels):
    """The label the continuation starts with (case-insensitive, whole word), longest first."""
    answer = continuation.lstrip().lower()
    for label in sorted(labels, key=len, reverse=True):
        want = label.lower()
        if answer.startswith(want) and (len(answer) == len(want) or not answer[len(want)].isalnum()):
            return label
    return "(no label)"


def keep_label_rows(model, labels):
    """Zeroes every row of lm_head.weight except the tokens "▁<label>": the random model then
    answers one of the labels (by the sign of a random dot product) or a zero-logit token,
    so the hold-out macro-F1 is not trivially 0. Edits the safetensors file in place."""
    vocab = json.load(open(os.path.join(model, "tokenizer.json")))["model"]["vocab"]
    keep = {vocab["\u2581" + label] for label in labels}
    path = os.path.join(model, "model.safetensors")
    with open(path, "r+b") as f:
        header_len = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(header_len))
        entry = header["lm_head.weight"]
        assert entry["dtype"] == "F32", entry
        rows, cols = entry["shape"]
        begin = 8 + header_len + entry["data_offsets"][0]
        for row in range(rows):
            if row not in keep:
                f.seek(begin + row * cols * 4)
                f.write(bytes(cols * 4))


def main():
    tmp = tempfile.mkdtemp(prefix="serve_head_")
    data = os.path.join(tmp, "sentiment.jsonl")
    with open(data, "w") as out:
        rows = json.load(open(os.path.join(FIXTURES, "sentiment", "test", "fixtures", "yelp.json")))
        for r in rows[:200]:
            out.write(json.dumps({"text": r["text"].strip(), "label": ["negative", "positive"][r["class"]]}) + "\n")
    run("prepare-data", "--source", data, "--root", os.path.join(tmp, "prepared"), "--id", "sentiment",
        "--format", "classification")
    model = os.path.join(tmp, "model")
    run("make-model", "--arch", "llama", "--layers", "2", "--hidden", "64", "--heads", "4", "--kv-heads", "2",
        "--intermediate", "128", "--vocab", "32000", "--tokenizer", TOKENIZER, "--seed", "5", "--out", model)
    keep_label_rows(model, ["negative", "positive"])
    report_path, predictions_path = os.path.join(tmp, "report.json"), os.path.join(tmp, "predictions.jsonl")
    r = run("choose-serve-head", "--model", model, "--dataset-root", os.path.join(tmp, "prepared"), "--dataset",
            "sentiment", "--prompt-format", "alpaca", "--limit", "24", "--max-new-tokens", "4", "--out", report_path, "--predictions",
            predictions_path)
    report = json.load(open(report_path))
    check(json.loads(r.stdout) == report, "stdout and --out carry the same report")
    trials = report["trials"]
    check([t["head"] for t in trials] == ["fp32", "bf16", "int8", "nf4"], "one trial per head, fp32 first")
    check(report["examples"] == 24, "--limit examples decoded")
    check(trials[0]["token_agreement"] == 1.0 and trials[0]["within_tolerance"], "fp32 is its own reference")
    check(trials[0]["macro_f1"] > 0, "the label-row model answers labels (fp32 macro-F1 %.3f > 0)" % trials[0]["macro_f1"])

    lines = [json.loads(l) for l in open(predictions_path)]
    check(len(lines) == 4 * 24, "one predictions line per head and example")
    labels = sorted({l["label"] for l in lines})
    for t in trials:
        mine = [l for l in lines if l["head"] == t["head"]]
        parsed = all(l["predicted"] == expected_label(l["continuation"], labels) for l in mine)
        check(parsed, "%s: every predicted label follows the documented parsing rule" % t["head"])
        f1 = f1_score([l["label"] for l in mine], [l["predicted"] for l in mine], labels=labels, average="macro",
                      zero_division=0)
        check(abs(f1 - t["macro_f1"]) < 1e-9, "%s: macro-F1 %.4f equals sklearn's %.4f" % (t["head"], t["macro_f1"], f1))
        within = (t["macro_f1"] >= trials[0]["macro_f1"] - report["tolerance"]["max_f1_drop"]
                  and t["token_agreement"] >= report["tolerance"]["min_token_agreement"])
        check(within == t["within_tolerance"], "%s: within_tolerance follows the rule" % t["head"])
    candidates = [t for t in trials if t["within_tolerance"]]
    fastest = max(candidates, key=lambda t: t["decode_tokens_per_second"])
    check(report["chosen"] == fastest["head"], "chosen %s = the fastest head within tolerance" % report["chosen"])

    bad = run("choose-serve-head", "--model", model, "--dataset-root", os.path.join(tmp, "prepared"), "--dataset",
              "sentiment", "--prompt-format", "alpaca", "--activations", "int4", ok=False)
    check(bad.returncode != 0 and "--activations" in bad.stderr, "a bad --activations is refused naming the flag")
    for flag, value in (("--max-f1-drop", "-0.1"), ("--min-agreement", "1.5")):
        refused = run("choose-serve-head", "--model", model, "--dataset-root", os.path.join(tmp, "prepared"),
                      "--dataset", "sentiment", "--prompt-format", "alpaca", flag, value, ok=False)
        check(refused.returncode != 0 and flag in refused.stderr, "%s %s is refused naming the flag" % (flag, value))
    missing = run("choose-serve-head", "--model", model, "--dataset-root", os.path.join(tmp, "prepared"), ok=False)
    check(missing.returncode != 0 and "--dataset" in missing.stderr, "a missing --dataset is refused naming it")
    if failures:
        sys.exit("%d check(s) failed" % len(failures))


if __name__ == "__main__":
    main()

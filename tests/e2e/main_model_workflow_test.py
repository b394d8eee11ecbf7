"""main_model_workflow: the main job's workflow on a pretrained default model (qlorad-tool
pretrain on the State of the Union speeches + the yelp/amazon sentiment sentences, never the imdb
ones evaluated here; 32k Llama-2 tokenizer;
cached in the build tree between runs through --skip-if-current): qloractl eval prints the
baseline macro-F1 with its 95 % interval (and the adapter's, and the delta's), greedy
generation before and after the adapter gives text, readable words from the base model.
That the adapter beats the baseline (lower end of the paired 95 % interval of the difference
above 0) is asserted in test_b, today an expected failure (see there)."""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import unittest

import daemon_harness as h

SOTU = os.path.join(h.NPM, "@stdlib", "datasets-sotu", "data")
TOKENIZER = os.path.join(h.NPM, "@lenml", "tokenizer-llama2", "models")
PROMPT = "Classify the following text. Answer with the label only.\n\nI loved this phone, the battery lasts for days"
CACHE = None


def pretrained_model(cache):
    """The default model's recipe, shortened to a fixed step count (same tokenizer and shape). The
    sentences evaluated here (imdb) stay out of pretraining: only yelp and amazon join the speeches."""
    os.makedirs(cache, exist_ok=True)
    sentences = os.path.join(cache, "sentences.jsonl")
    with open(sentences, "w") as out:
        for source in ("yelp", "amazon"):
            with open(os.path.join(h.NPM, "sentiment", "test", "fixtures", source + ".json")) as f:
                for row in json.load(f):
                    out.write(json.dumps({"text": row["text"].strip()}) + "\n")
    model = os.path.join(cache, "model")
    proc = subprocess.run([h.TOOL, "pretrain", "--text-dir", SOTU, "--jsonl", sentences, "--tokenizer", TOKENIZER,
                           "--out", model, "--max-steps", os.environ.get("MAIN_MODEL_STEPS", "40"),
                           "--max-seconds", "0", "--batch-size", "8", "--seed", "3", "--eval-windows", "32",
                           "--skip-if-current", "--quiet"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError("pretrain failed:\n" + proc.stdout + proc.stderr)
    print(proc.stdout.strip())
    return model


def readable(text):
    """Mostly letters and spaces, with at least three words of two or more letters."""
    letters = sum(c.isalpha() or c.isspace() for c in text)
    return len(text) > 0 and letters / len(text) > 0.7 and len(re.findall(r"[A-Za-z]{2,}", text)) >= 3


class MainModelWorkflowTest(unittest.TestCase):
    delta = None  # the adapter's evaluation: paired 95 % interval of adapter - baseline

    def test_a_workflow(self):
        model = pretrained_model(CACHE)
        with open(os.path.join(model, "pretrain.json")) as f:
            record = json.load(f)
        self.assertGreaterEqual(record["heldout_perplexity_before"] / record["heldout_perplexity_after"], 5)
        work = h.tempdir("qlorad-main-model-")
        data = h.write_sentiment(os.path.join(work, "imdb.jsonl"))
        d = h.Daemon(work, model).start()
        self.addCleanup(lambda: d.proc and d.stop(signal.SIGKILL))
        d.ctl("datasets", "upload", data, "--id", "imdb", "--format", "classification", role="trainer")

        table = d.ctl("eval", "--dataset", "imdb", role="trainer").stdout
        print(table)
        m = re.search(r"baseline\s+([0-9.]+)\s+95% CI \[([0-9.]+), ([0-9.]+)\]", table)
        self.assertIsNotNone(m, "the baseline row has no 95% interval:\n" + table)
        point, lower, upper = map(float, m.groups())
        self.assertLessEqual(lower, point)
        self.assertLessEqual(point, upper)

        before_free = d.ctl_json("generate", "--raw", "--prompt", "The state of the Union is", "--max-new-tokens", "30",
                                 "--temperature", "0", role="inference")["text"]
        before = d.ctl_json("generate", "--prompt", PROMPT, "--max-new-tokens", "12", "--temperature", "0",
                            role="inference")["text"]
        print("base model, free text: %r\nbase model, classification prompt: %r" % (before_free, before))
        self.assertTrue(readable(before_free), "the pretrained model's continuation is not readable: %r" % before_free)

        d.ctl("jobs", "submit", "--name", "sentiment", "--dataset", "imdb", "--quantize", "nf4", "--epochs", "2",
              "--batch-size", "8", "--max-seq-len", "128", "--lr", "2e-3", "--r", "16", "--alpha", "32", "--seed", "1",
              "--watch", role="trainer")
        evaluation = d.ctl_json("eval", "--dataset", "imdb", "--adapter", "sentiment@1", role="trainer")
        delta = json.loads(evaluation["record_json"])["delta"]
        print("macro F1: baseline %.3f, adapter %.3f, delta 95%% CI [%.3f, %.3f]" % (
            evaluation["baseline_value"], evaluation["adapter_value"], delta["lower"], delta["upper"]))
        MainModelWorkflowTest.delta = delta
        shown = d.ctl("eval", "get", evaluation["evaluation_id"], role="viewer").stdout
        self.assertRegex(shown, r"sentiment@1\s+[0-9.]+\s+95% CI \[[0-9.]+, [0-9.]+\]\s+delta 95% CI \[")

        after = d.ctl_json("generate", "--adapter", "sentiment@1", "--prompt", PROMPT, "--max-new-tokens", "12",
                           "--temperature", "0", role="inference")["text"]
        print("with the adapter: %r" % after)
        self.assertTrue(after.strip(), "the adapter generated nothing")
        self.assertNotEqual(before, after)

    # KNOWN GAP (issue 22, measured 2026-12-05): on the briefly pretrained model (40 steps here,
    # 102 steps / 240 s in the main job; held-out perplexity ~500, the unigram/bigram stage) a
    # LoRA/QLoRA adapter does not learn the sentiment labels (train loss stays at chance: nf4
    # lr 2e-3 / 1e-2, fp32 lr 5e-3 x 4 epochs), while on the random-weights model it does
    # (e2e_workflow). Marked as an expected failure so the suite shows it and reports an
    # unexpected success once the adapter beats the baseline; the lead decides the remedy.
    @unittest.expectedFailure
    def test_b_adapter_beats_baseline(self):
        self.assertIsNotNone(MainModelWorkflowTest.delta, "the workflow did not reach the adapter evaluation")
        self.assertGreater(MainModelWorkflowTest.delta["lower"], 0,
                           "the adapter does not beat the baseline with confidence: %s" % MainModelWorkflowTest.delta)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--cache", default=os.path.join(os.getcwd(), "main_model_cache"))
    args, rest = parser.parse_known_args()
    CACHE = args.cache
    unittest.main(argv=[sys.argv[0]] + rest)

"""The adapter CI gate against the real daemon (qloractl, SQLite audit log).

tickets@1 is trained by a QLoRA job (on tickets whose label a keyword names) and serves tickets:prod. tickets@2 is a PEFT
adapter written here (json + struct + numpy, not qlorad's writer) with large random
weights: a worse version. The gate refuses it while it has no comparable evaluation, then
refuses it on the numbers (both metrics and the interval in the message), and the
interval equals an independent paired bootstrap (tests/reference/bootstrap_reference.py:
SplitMix64 + scikit-learn's macro-F1 on each resample + numpy's percentile) computed from
the two evaluation records. A deployer's override moves the alias and is audited in the
promote's own entry. tickets@3, tickets@1's exported files uploaded again, is better
than @2 (passes onto prod) and equal to @1 (passes onto canary with a zero interval).
"""
import json
import os
import re
import sqlite3
import struct
import sys
import unittest

import numpy as np

import daemon_harness as h

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
import bootstrap_reference  # noqa: E402

JOB_ARGS = ["--dataset", "tickets", "--batch-size", "8", "--max-seq-len", "64", "--lr", "5e-3", "--r", "8", "--epochs", "3"]
HIDDEN, LAYERS = 64, 2  # daemon_harness.make_model's Llama


def write_tickets(path, rows=600, seed=5):
    """Support tickets whose label is named by one keyword: a task the tiny model learns for sure,
    so that the trained version is decisively better than the scrambled one."""
    rng = np.random.default_rng(seed)
    topics = {"billing": ["invoice", "refund", "charge"], "shipping": ["parcel", "courier", "delivery"],
              "account": ["password", "login", "username"]}
    openers = ["Hello, I have a problem with my", "Please help with the", "Urgent question about my",
               "I am writing about the", "Something went wrong with the"]
    with open(path, "w") as f:
        for _ in range(rows):
            label = rng.choice(sorted(topics))
            text = "%s %s. Order %d." % (rng.choice(openers), rng.choice(topics[label]), rng.integers(1000, 9999))
            f.write(json.dumps({"text": text, "label": str(label)}) + "\n")
    return path


def write_random_adapter(directory, rank=8, std=2.0, seed=3):
    """A PEFT LoRA adapter (q_proj, o_proj) written by the safetensors spec; large weights scramble the model."""
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(seed)
    tensors = []
    for layer in range(LAYERS):
        for module in ("q_proj", "o_proj"):
            prefix = "base_model.model.model.layers.%d.self_attn.%s" % (layer, module)
            tensors.append((prefix + ".lora_A.weight", rng.normal(0, std, (rank, HIDDEN)).astype("<f4")))
            tensors.append((prefix + ".lora_B.weight", rng.normal(0, std, (HIDDEN, rank)).astype("<f4")))
    header, offset = {}, 0
    for name, array in tensors:
        header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with open(os.path.join(directory, "adapter_model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(blob)) + blob + b"".join(a.tobytes() for _, a in tensors))
    config = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": rank, "lora_alpha": 2 * rank, "lora_dropout": 0.0,
              "bias": "none", "fan_in_fan_out": False, "use_rslora": False, "base_model_name_or_path": "tiny",
              "target_modules": ["q_proj", "o_proj"]}
    with open(os.path.join(directory, "adapter_config.json"), "w") as f:
        json.dump(config, f)
    return directory


class PromotionGateTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = h.tempdir("qlorad-gate-")
        model = h.make_model(os.path.join(cls.work, "model"))
        data = write_tickets(os.path.join(cls.work, "tickets.jsonl"))
        os.makedirs(os.path.join(cls.work, "d"))
        cls.d = h.Daemon(os.path.join(cls.work, "d"), model, extra_args=["--promotion-margin", "0.05"]).start()
        cls.d.ctl("datasets", "upload", data, "--id", "tickets", "--format", "classification", role="trainer")

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def evaluate(self, adapter):
        e = self.d.ctl_json("eval", "--dataset", "tickets", "--adapter", adapter, role="trainer")
        return json.loads(e["record_json"])

    def promote(self, adapter, alias, *extra, check=True):
        return self.d.ctl("adapters", "promote", adapter, alias, *extra, role="deployer", check=check)

    def audit(self, adapter):
        db = sqlite3.connect(os.path.join(self.d.state_dir, "qlorad.db"))
        rows = db.execute("SELECT action, actor, details FROM audit_log WHERE entity_id = ? ORDER BY seq", (adapter,))
        out = [(a, actor, json.loads(d)) for a, actor, d in rows]
        db.close()
        return out

    def test_gate(self):
        d = self.d
        d.ctl("jobs", "submit", "--name", "tickets", *JOB_ARGS, "--watch", role="trainer")
        serving = self.evaluate("tickets@1")
        d.ctl("adapters", "approve", "tickets@1", "--note", "beats the baseline", role="deployer")
        first = self.promote("tickets@1", "tickets:prod")
        self.assertIn("promotion gate: not applicable (alias 'tickets:prod' serves nothing yet)", first.stdout)

        d.ctl("adapters", "upload", write_random_adapter(os.path.join(self.work, "random")), "--name", "tickets",
              role="deployer")
        unevaluated = d.ctl("adapters", "check-promotion", "tickets@2", "tickets:prod", role="viewer", check=False)
        self.assertNotEqual(unevaluated.returncode, 0)
        self.assertIn("tickets@2 has no evaluation comparable with tickets@1", unevaluated.stderr)

        candidate = self.evaluate("tickets@2")
        d.ctl("adapters", "approve", "tickets@2", "--note", "approval does not bypass the gate", role="deployer")
        refused = self.promote("tickets@2", "tickets:prod", check=False)
        self.assertNotEqual(refused.returncode, 0)
        self.assertIn("FAILED_PRECONDITION", refused.stderr)
        print(refused.stderr.strip())
        m = re.search(r"tickets@2 macro_f1 (\S+) vs serving tickets@1 (\S+) on dataset tickets \(\d+ examples\): delta (\S+) "
                      r"\(95% CI (\S+) to (\S+)\), margin 0.0500: refused", refused.stderr)
        self.assertIsNotNone(m, refused.stderr)
        cand_value, serv_value, delta, low, high = map(float, m.groups())
        self.assertAlmostEqual(cand_value, candidate["adapter"]["classification"]["macro avg"]["f1-score"], places=4)
        self.assertAlmostEqual(serv_value, serving["adapter"]["classification"]["macro avg"]["f1-score"], places=4)
        self.assertLess(low, -0.05)
        # The interval, independently: the two records' outputs on the same hold-out examples.
        self.assertEqual(candidate["example_ids"], serving["example_ids"])
        point, ref_low, ref_high = bootstrap_reference.paired_difference(
            serving["references"], candidate["adapter"]["outputs"], serving["adapter"]["outputs"], "macro_f1",
            serving["settings"]["labels"])
        print("reference: delta %+.4f (95%% CI %+.4f to %+.4f)" % (point, ref_low, ref_high))
        for got, want in ((delta, point), (low, ref_low), (high, ref_high)):
            self.assertAlmostEqual(got, want, delta=6e-5)
        self.assertEqual(d.ctl_json("adapters", "get", "tickets:prod")["adapter_id"], "tickets@1")  # nothing moved

        overridden = json.loads(d.ctl("-o", "json", "adapters", "promote", "tickets@2", "tickets:prod",
                                      "--override-reason", "incident 42: roll forward", role="deployer").stdout)
        gate = overridden["promotion"]
        self.assertTrue(gate["overridden"])
        self.assertFalse(gate.get("passed", False))
        self.assertAlmostEqual(gate["delta_low"], ref_low, places=9)
        self.assertAlmostEqual(gate["delta_high"], ref_high, places=9)
        self.assertEqual(d.ctl_json("adapters", "get", "tickets:prod")["adapter_id"], "tickets@2")
        action, actor, details = self.audit("tickets@2")[-1]
        self.assertEqual((action, actor), ("promote_deploy", "deployer-user"))
        self.assertEqual(details["override_reason"], "incident 42: roll forward")
        self.assertTrue(details["gate"]["overridden"])
        self.assertEqual(details["gate"]["serving_evaluation_id"], serving["id"])
        self.assertAlmostEqual(details["gate"]["delta"]["lower"], ref_low, places=9)
        self.assertEqual(details["previous_target"], "tickets@1")

        exported = os.path.join(self.work, "exported")
        d.ctl("adapters", "export", "tickets@1", "--out", exported, role="deployer")
        d.ctl("adapters", "upload", exported, "--name", "tickets", role="deployer")
        self.evaluate("tickets@3")
        d.ctl("adapters", "approve", "tickets@3", "--note", "tickets@1 again", role="deployer")
        better = self.promote("tickets@3", "tickets:prod")
        self.assertRegex(better.stdout, r"tickets@3 macro_f1 \S+ vs serving tickets@2 .* passed")
        self.assertEqual(d.ctl_json("adapters", "get", "tickets:prod")["adapter_id"], "tickets@3")
        self.promote("tickets@1", "tickets:canary")
        equal = d.ctl("adapters", "check-promotion", "tickets@3", "tickets:canary", role="viewer")
        self.assertIn("delta +0.0000 (95% CI +0.0000 to +0.0000), margin 0.0500: passed", equal.stdout)
        self.assertNotIn("override_reason", self.audit("tickets@3")[-1][2])


if __name__ == "__main__":
    unittest.main()

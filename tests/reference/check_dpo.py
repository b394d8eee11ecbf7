"""DPO (issue 23) against a float64 reference written here.

A preference dataset {prompt, chosen, rejected} goes through `qlorad-tool prepare-data
--format preference` (validation, PII, split); `qlorad-tool train --method dpo --quantize nf4`
trains a QLoRA adapter on its train split; `qlorad-tool dpo-eval --dump-pairs` scores the
hold-out split. For every hold-out pair this script recomputes, in float64 with
llama_reference.py:
  policy     Σ log p(completion token) with W = dequant_nf4(W0) + s·B@A on adapted modules
             (dequantization by nf4_reference.py, s = alpha / r, A and B from the safetensors file)
  reference  the same with W = dequant_nf4(W0): the base with the adapter disabled
and from them the DPO loss −log σ(β((πc − rc) − (πr − rr))), the rewards β(π − r) and the reward
accuracy, which must equal dpo-eval's within 1e-4 (the log-probs within 1e-4 relative).
The token ids and masks are qlorad's (its tokenizer and prompt template); the script checks
only that the two completions share the prompt and that only completion tokens are trained.
Also: training_run.json records method, beta and the DPO curves; SFT refuses the dataset.
"""
import json
import math
import os
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_reference  # noqa: E402
from reference_checks import (PEFT_PREFIX, TOOL, check, finish, nf4_quant, projection_modules, run,  # noqa: E402
                              tiny_model)

BETA = 0.2


def write_preferences(path):
    words = ["great", "awful", "fine", "dull", "superb", "poor", "lovely", "bad"]
    with open(path, "w") as f:
        for i in range(96):
            good = i % 2 == 1
            label, wrong = ("positive", "negative") if good else ("negative", "positive")
            f.write(json.dumps({"prompt": f"review {i}: the film was {words[2 * (i % 4) + (0 if good else 1)]}",
                                "chosen": f"The sentiment is {label}.",
                                "rejected": f"The sentiment is {wrong}."}) + "\n")


def reference_weights(cfg, original, adapter_dir):
    """float64 (policy, base) weights: NF4-dequantized projections, plus s·B@A on adapted ones."""
    with open(os.path.join(adapter_dir, "adapter_config.json")) as f:
        acfg = json.load(f)
    scale = acfg["lora_alpha"] / acfg["r"]
    tensors = llama_reference.read_safetensors(os.path.join(adapter_dir, "adapter_model.safetensors"))
    base = {k: v.double() for k, v in original.items()}
    for module in projection_modules(cfg):
        base[module + ".weight"] = nf4_quant(original[module + ".weight"].float())[1].double()
    policy = dict(base)
    adapted = 0
    for module in projection_modules(cfg):
        a = tensors.get(f"{PEFT_PREFIX}{module}.lora_A.weight")
        if a is None:
            continue
        b = tensors[f"{PEFT_PREFIX}{module}.lora_B.weight"].double()
        policy[module + ".weight"] = base[module + ".weight"] + scale * (b @ a.double())
        adapted += 1
    return policy, base, adapted


def completion_logprob(cfg, weights, ids, trainable):
    logp = torch.log_softmax(llama_reference.logits_from_weights(cfg, weights, ids), dim=-1)
    return sum(logp[t - 1, ids[t]].item() for t in range(1, len(ids)) if trainable[t])


def check_masks(pairs):
    ok = True
    for p in pairs:
        first = [p[s + "_trainable"].index(1) for s in ("chosen", "rejected")]
        ok &= first[0] == first[1] and p["chosen_ids"][:first[0]] == p["rejected_ids"][:first[1]]
        ok &= all(p[s + "_trainable"][first[0]:] == [1] * (len(p[s + "_ids"]) - first[0]) for s in ("chosen", "rejected"))
        ok &= p["chosen_ids"] != p["rejected_ids"]
    check(ok, f"{len(pairs)} hold-out pairs: same prompt tokens, only the (different) completions trained")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        base_dir, cfg = tiny_model(tmp, seed=31)
        source = os.path.join(tmp, "prefs.jsonl")
        write_preferences(source)
        root = os.path.join(tmp, "ds")
        run([TOOL, "prepare-data", "--source", source, "--root", root, "--id", "prefs", "--format", "preference",
             "--allow-small"])
        with open(os.path.join(root, "prefs", "manifest.json")) as f:
            manifest = json.load(f)
        check(manifest.get("format") == "preference", f"stored as format preference ({manifest.get('format')})")

        adapter = os.path.join(tmp, "dpo")
        common = ["--model", base_dir, "--dataset-root", root, "--dataset", "prefs", "--quantize", "nf4",
                  "--prompt-format", "alpaca", "--r", "8", "--alpha", "16"]
        run([TOOL, "train", *common, "--out", adapter, "--method", "dpo", "--dpo-beta", str(BETA), "--epochs", "10",
             "--batch-size", "8", "--lr", "5e-3", "--quiet"])
        with open(os.path.join(adapter, "training_run.json")) as f:
            record = json.load(f)
        dpo = record.get("dpo", {})
        check(record.get("method") == "dpo" and dpo.get("beta") == BETA and
              len(dpo.get("step_reward_accuracies", [])) == record["steps"] > 0,
              f"training_run.json: method dpo, beta {dpo.get('beta')}, one reward accuracy per step ({record['steps']})")
        sft = run([TOOL, "train", *common, "--out", os.path.join(tmp, "sft")], expect_ok=False)
        check(sft.returncode != 0 and "method dpo" in sft.stderr, f"SFT refuses a preference dataset ({sft.stderr.strip()[-100:]})")

        dump = os.path.join(tmp, "pairs.jsonl")
        proc = run([TOOL, "dpo-eval", "--model", base_dir, "--quantize", "nf4", "--adapter", adapter, "--dataset-root", root,
                    "--dataset", "prefs", "--prompt-format", "alpaca", "--beta", str(BETA), "--dump-pairs", dump,
                    "--resamples", "200"])
        report = json.loads(proc.stdout)
        with open(dump) as f:
            pairs = [json.loads(line) for line in f]
        check(len(pairs) == report["pairs"] == manifest["files"]["holdout"]["examples"],
              f"dpo-eval scored every hold-out pair ({len(pairs)})")
        check_masks(pairs)

        policy_w, base_w, adapted = reference_weights(cfg, llama_reference.read_checkpoint(base_dir), adapter)
        check(adapted == 14, f"adapter on all 7 projections of 2 layers ({adapted} modules)")
        worst, mine = 0.0, {"policy_chosen": [], "policy_rejected": [], "reference_chosen": [], "reference_rejected": []}
        for p in pairs:
            for side in ("chosen", "rejected"):
                for kind, weights in (("policy", policy_w), ("reference", base_w)):
                    value = completion_logprob(cfg, weights, p[side + "_ids"], p[side + "_trainable"])
                    mine[f"{kind}_{side}"].append(value)
                    worst = max(worst, abs(p[f"{kind}_{side}"] - value) / max(abs(value), 1.0))
        check(worst < 1e-4, f"summed completion log-probs (adapter and base) = float64 reference (worst rel {worst:.2e})")
        n = len(pairs)
        zc = [BETA * (mine["policy_chosen"][i] - mine["reference_chosen"][i]) for i in range(n)]
        zr = [BETA * (mine["policy_rejected"][i] - mine["reference_rejected"][i]) for i in range(n)]
        loss = sum(math.log1p(math.exp(-(zc[i] - zr[i]))) for i in range(n)) / n
        accuracy = sum(zc[i] > zr[i] for i in range(n)) / n
        got = report["dpo"]
        check(abs(got["loss"] - loss) < 1e-4, f"DPO loss {got['loss']:.6f} = reference {loss:.6f}")
        check(abs(got["chosen_reward"] - sum(zc) / n) < 1e-4 and abs(got["rejected_reward"] - sum(zr) / n) < 1e-4,
              f"mean rewards chosen {got['chosen_reward']:.5f} / rejected {got['rejected_reward']:.5f} = reference")
        check(abs(report["reward_accuracy"]["point"] - accuracy) < 1e-9,
              f"reward accuracy {report['reward_accuracy']['point']:.4f} = reference {accuracy:.4f}")
        base_pref = sum(mine["reference_chosen"][i] > mine["reference_rejected"][i] for i in range(n)) / n
        check(abs(report["base_preference"]["point"] - base_pref) < 1e-9,
              f"base preference {report['base_preference']['point']:.4f} = reference {base_pref:.4f}")
        check(accuracy > 0.9 and loss < 0.3, f"the adapter learned the preference on the hold-out (accuracy {accuracy:.3f}, loss {loss:.4f})")
    finish("DPO")


if __name__ == "__main__":
    main()

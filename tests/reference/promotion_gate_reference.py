"""ComparePromotion (core/eval/promotion_comparison) against an independent reference on
random inputs: scikit-learn's macro/weighted F1 and accuracy on each of 1000 paired
resamples drawn by a SplitMix64 written from its definition (bootstrap_reference.py),
numpy's percentile. Cases vary the size (5..150), the number of labels (2..5), label
names absent from one system's outputs, and how far the candidate is from the serving
version; one case with different settings must be refused with a hint.
usage: promotion_gate_reference.py PATH/TO/promotion_comparison_dump
"""
import json
import random
import subprocess
import sys
import tempfile

import bootstrap_reference as ref

DUMP = sys.argv[1]
rng = random.Random(20261205)
cases = []
for i in range(12):
    n = rng.randint(5, 150)
    labels = ["l%d" % k for k in range(rng.randint(2, 5))]
    references = [rng.choice(labels) for _ in range(n)]
    def noisy(p):
        return [r if rng.random() < p else rng.choice(labels) for r in references]
    cases.append({"references": references, "labels": labels, "metric": ["macro_f1", "weighted_f1", "accuracy"][i % 3],
                  "baseline": noisy(0.2), "candidate": noisy(rng.uniform(0.1, 0.9)), "serving": noisy(rng.uniform(0.1, 0.9))})
cases[3]["candidate"] = [cases[3]["labels"][0]] * len(cases[3]["references"])  # one label never predicted
refused = dict(cases[0], serving_settings={"scoring": "generation", "labels": cases[0]["labels"]})
cases.append(refused)

with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
    json.dump(cases, f)
    f.flush()
    got = json.loads(subprocess.run([DUMP, f.name], check=True, capture_output=True, text=True).stdout)

failures = []
for i, (c, g) in enumerate(zip(cases[:-1], got[:-1])):
    point, lower, upper = ref.paired_difference(c["references"], c["candidate"], c["serving"], c["metric"], c["labels"])
    cand = ref.metric_value(c["metric"], c["references"], c["candidate"], c["labels"])
    serv = ref.metric_value(c["metric"], c["references"], c["serving"], c["labels"])
    for what, want, have in (("point", point, g["point"]), ("lower", lower, g["lower"]), ("upper", upper, g["upper"]),
                             ("candidate", cand, g["candidate_value"]), ("serving", serv, g["serving_value"])):
        if abs(want - have) > 1e-9:
            failures.append("case %d (%s, n=%d) %s: reference %.12f, qlorad %.12f" % (i, c["metric"], len(c["references"]),
                                                                                   what, want, have))
    print("case %2d %-11s n=%3d delta %+.4f [%+.4f, %+.4f]" % (i, c["metric"], len(c["references"]), point, lower, upper))
if "error" not in got[-1] or "settings differ" not in got[-1]["error"] or "hint:" not in got[-1]["error"]:
    failures.append("different settings were not refused with a hint: %s" % got[-1])
if failures:
    print("\n".join(failures))
    sys.exit(1)
print("promotion gate comparison: %d cases match the reference; different settings refused" % (len(cases) - 1))

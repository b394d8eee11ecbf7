"""Independent Python recomputation of qlorad's evaluation metrics (core/eval).

Compares the C++ results (from the eval_reference_dump helper, argv[1]) with:
  * scikit-learn itself (Debian python3-sklearn): precision_recall_fscore_support,
    accuracy_score and confusion_matrix on random labels (zero_division=0, labels = sorted
    union unless given); plus a from-the-definitions recomputation for the fields sklearn
    does not expose (the accuracy-row rule, the ill-defined label lists);
  * ROUGE-L exactly as rouge-score's tokenize.tokenize + _score_lcs, with NLTK's
    PorterStemmer() (Debian python3-nltk) for the stemming cases, on sentence pairs
    from the UCI Sentiment Labelled Sentences (npm `sentiment` test fixtures);
  * the Porter stemmer on every distinct word of those sentences vs NLTK;
  * SQuAD exact match / token F1 (the official evaluate script's normalize_answer);
  * Cohen's kappa (the textbook formula) and numpy.percentile (linear).
Exits non-zero on the first mismatch beyond 1e-12 (or any token/stem difference), and when
a reference dependency (sklearn, nltk, numpy, the npm fixtures) is missing: a reference that
is not there must not pass silently.
"""
import collections
import json
import os
import random
import re
import string
import subprocess
import sys
import tempfile
import warnings

try:
    from sklearn import metrics as sk_metrics
except ImportError:
    sys.exit("FAILED: python3-sklearn is not installed (the classification reference); run deploy/setup.sh")

DUMP = sys.argv[1] if len(sys.argv) > 1 else sys.exit("usage: eval_reference.py path/to/eval_reference_dump")
SOURCE = os.environ.get("QLORAD_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
TOL = 1e-12
rng = random.Random(20261129)
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        if len(failures) <= 20:
            print("MISMATCH:", what)


# ---------------------------------------------------------------- classification
def sk_report(truth, pred, labels=None):
    present = sorted(set(truth) | set(pred))
    labels = list(labels) if labels is not None else present
    idx = {l: i for i, l in enumerate(labels)}
    k = len(labels)
    tp = [0] * k
    npred = [0] * k
    ntrue = [0] * k
    conf = [[0] * k for _ in range(k)]
    for t, p in zip(truth, pred):
        if t in idx:
            ntrue[idx[t]] += 1
        if p in idx:
            npred[idx[p]] += 1
        if t in idx and p in idx:
            conf[idx[t]][idx[p]] += 1
            if t == p:
                tp[idx[t]] += 1
    div = lambda a, b: a / b if b else 0.0
    prec = [div(tp[i], npred[i]) for i in range(k)]
    rec = [div(tp[i], ntrue[i]) for i in range(k)]
    f1 = [div(2 * tp[i], npred[i] + ntrue[i]) for i in range(k)]
    sup = sum(ntrue)
    out = {
        "labels": labels,
        "per_class": [(prec[i], rec[i], f1[i], ntrue[i]) for i in range(k)],
        "accuracy": sum(t == p for t, p in zip(truth, pred)) / len(truth),
        "accuracy_row": set(labels) >= set(present),
        "macro": (sum(prec) / k, sum(rec) / k, sum(f1) / k, sup),
        "weighted": (div(sum(p * s for p, s in zip(prec, ntrue)), sup), div(sum(r * s for r, s in zip(rec, ntrue)), sup),
                     div(sum(f * s for f, s in zip(f1, ntrue)), sup), sup),
        "micro": (div(sum(tp), sum(npred)), div(sum(tp), sup), div(2 * sum(tp), sum(npred) + sup), sup),
        "confusion": conf,
        "ill_p": [labels[i] for i in range(k) if npred[i] == 0],
        "ill_r": [labels[i] for i in range(k) if ntrue[i] == 0],
    }
    return out


def compare_report(ref, got, name):
    check(ref["labels"] == got["labels"], f"{name}: labels {ref['labels']} vs {got['labels']}")
    for (p, r, f, s), g in zip(ref["per_class"], got["per_class"]):
        for a, b, what in ((p, g["precision"], "precision"), (r, g["recall"], "recall"), (f, g["f1-score"], "f1")):
            check(abs(a - b) <= TOL, f"{name}: {g['label']} {what} {a} vs {b}")
        check(s == g["support"], f"{name}: {g['label']} support")
    check(abs(ref["accuracy"] - got["accuracy"]) <= TOL, f"{name}: accuracy")
    check(ref["accuracy_row"] == got["accuracy_row"], f"{name}: accuracy_row")
    for key, gk in (("macro", "macro avg"), ("weighted", "weighted avg"), ("micro", "micro avg")):
        g = got[gk]
        for a, b in zip(ref[key][:3], (g["precision"], g["recall"], g["f1-score"])):
            check(abs(a - b) <= TOL, f"{name}: {gk} {a} vs {b}")
        check(ref[key][3] == g["support"], f"{name}: {gk} support")
    check(ref["confusion"] == got["confusion_matrix"], f"{name}: confusion")
    check(ref["ill_p"] == got["ill_defined"]["precision"], f"{name}: ill-defined precision")
    check(ref["ill_r"] == got["ill_defined"]["recall"], f"{name}: ill-defined recall")


def compare_sklearn(truth, pred, labels, got, name):
    """qlorad's report against scikit-learn's own functions (zero_division=0)."""
    labels = list(labels) if labels is not None else sorted(set(truth) | set(pred))
    check(labels == got["labels"], f"{name}: labels {labels} vs {got['labels']}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p, r, f, s = sk_metrics.precision_recall_fscore_support(truth, pred, labels=labels, average=None, zero_division=0)
        for i, g in enumerate(got["per_class"]):
            for a, b, what in ((p[i], g["precision"], "precision"), (r[i], g["recall"], "recall"), (f[i], g["f1-score"], "f1")):
                check(abs(float(a) - b) <= TOL, f"{name}: {g['label']} {what} sklearn {a} vs {b}")
            check(int(s[i]) == g["support"], f"{name}: {g['label']} support sklearn {s[i]} vs {g['support']}")
        for average, key in (("macro", "macro avg"), ("weighted", "weighted avg"), ("micro", "micro avg")):
            want = sk_metrics.precision_recall_fscore_support(truth, pred, labels=labels, average=average, zero_division=0)
            have = (got[key]["precision"], got[key]["recall"], got[key]["f1-score"])
            for a, b, what in zip(want[:3], have, ("precision", "recall", "f1")):
                check(abs(float(a) - b) <= TOL, f"{name}: {key} {what} sklearn {a} vs {b}")
            check(int(s.sum()) == got[key]["support"], f"{name}: {key} support")
    check(abs(sk_metrics.accuracy_score(truth, pred) - got["accuracy"]) <= TOL, f"{name}: accuracy")
    if set(labels) & set(truth):
        conf = sk_metrics.confusion_matrix(truth, pred, labels=labels).tolist()
    else:  # sklearn refuses labels none of which is in y_true; every cell is then 0 by definition
        conf = [[0] * len(labels) for _ in labels]
    check(conf == got["confusion_matrix"], f"{name}: confusion sklearn {conf} vs {got['confusion_matrix']}")


# The hand-computed fixture of classification_test.cc plus random cases.
cls_cases = [{
    "truth": ["cat", "cat", "cat", "dog", "dog", "dog", "dog", "bird", "bird", "cat"],
    "pred": ["cat", "dog", "cat", "dog", "dog", "fish", "cat", "cat", "dog", "cat"],
}]
cls_cases.append(dict(cls_cases[0], labels=["dog", "cat"]))
for n in range(40):
    k_true = rng.randint(2, 6)
    names = [f"c{j}" for j in range(k_true + 2)]
    size = rng.randint(1, 300)
    truth = [rng.choice(names[:k_true]) for _ in range(size)]
    pred = [t if rng.random() < 0.6 else rng.choice(names[1:]) for t in truth]  # c0 rarely predicted
    case = {"truth": truth, "pred": pred}
    if n % 5 == 0:
        case["labels"] = rng.sample(names, rng.randint(1, len(names)))
    cls_cases.append(case)

# ---------------------------------------------------------------- ROUGE / stemmer
try:
    from nltk.stem import porter
    STEMMER = porter.PorterStemmer()  # rouge-score: porter.PorterStemmer() (NLTK_EXTENSIONS)
except ImportError:
    sys.exit("FAILED: python3-nltk is not installed (the stemming reference); run deploy/setup.sh")


def rouge_tokenize(text, stem):
    text = text.lower()
    text = re.sub(r"[^a-z0-9]+", " ", text)
    tokens = re.split(r"\s+", text)
    if stem:
        tokens = [STEMMER.stem(x) if len(x) > 3 else x for x in tokens]
    return [x for x in tokens if re.match(r"^[a-z0-9]+$", x)]


def rouge_l(target, prediction, stem):
    t, p = rouge_tokenize(target, stem), rouge_tokenize(prediction, stem)
    if not t or not p:
        return p, 0.0, 0.0, 0.0
    table = [[0] * (len(p) + 1) for _ in range(len(t) + 1)]
    for i in range(1, len(t) + 1):
        for j in range(1, len(p) + 1):
            table[i][j] = table[i - 1][j - 1] + 1 if t[i - 1] == p[j - 1] else max(table[i - 1][j], table[i][j - 1])
    lcs = table[-1][-1]
    prec, rec = lcs / len(p), lcs / len(t)
    f = 2 * prec * rec / (prec + rec) if prec + rec > 0 else 0.0
    return p, prec, rec, f


sentences = []
for fixture in ("imdb", "yelp", "amazon"):
    path = os.path.join(SOURCE, "tests/fixtures/npm/node_modules/sentiment/test/fixtures", fixture + ".json")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            sentences += [r["text"] for r in json.load(f) if r.get("text")]
if not sentences:
    sys.exit("FAILED: the npm sentiment fixtures are missing (tests/fixtures/npm/install.sh)")
rouge_cases = []
for i in range(400):
    a, b = rng.choice(sentences), rng.choice(sentences)
    if i % 4 == 0:  # a paraphrase-like pair: b shares words with a
        words = a.split()
        b = " ".join(w for w in words if rng.random() < 0.7) + " " + b[: len(b) // 3]
    rouge_cases.append({"target": a, "prediction": b, "stem": STEMMER is not None and i % 2 == 0})
rouge_cases.append({"target": "", "prediction": "x", "stem": False})
rouge_cases.append({"target": "\u212aelvin \u0130stanbul \u00c9T\u00c9", "prediction": "kelvin istanbul", "stem": False})

words = sorted({w for s in sentences for w in rouge_tokenize(s, False) if len(w) > 3})
stem_words = words if STEMMER is not None else []

# ---------------------------------------------------------------- SQuAD
def normalize_answer(s):
    def remove_articles(text):
        return re.sub(r"\b(a|an|the)\b", " ", text)

    def white_space_fix(text):
        return " ".join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    return white_space_fix(remove_articles(remove_punc(s.lower())))


def squad_f1(prediction, reference):
    pred, gold = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not pred or not gold:
        return float(pred == gold)
    common = collections.Counter(pred) & collections.Counter(gold)
    same = sum(common.values())
    if same == 0:
        return 0.0
    p, r = same / len(pred), same / len(gold)
    return 2 * p * r / (p + r)


ascii_sentences = [s for s in sentences if all(ord(c) < 128 for c in s)]
squad_cases = []
for i in range(300):
    a = rng.choice(ascii_sentences)
    b = rng.choice([a, a.upper(), " ".join(a.split()[: max(1, len(a.split()) // 2)]), rng.choice(ascii_sentences),
                    "The " + a + "!", "an " + a])
    squad_cases.append({"prediction": b, "reference": a})
squad_cases += [{"prediction": "", "reference": ""}, {"prediction": "the", "reference": "a"},
                {"prediction": "theater", "reference": "the ater"}]

# ---------------------------------------------------------------- kappa / percentile
def kappa(a, b):
    n = len(a)
    po = sum(x == y for x, y in zip(a, b)) / n
    ca, cb = collections.Counter(a), collections.Counter(b)
    pe = sum(ca[l] / n * cb[l] / n for l in set(a) | set(b))
    return None if 1 - pe <= 1e-12 else (po - pe) / (1 - pe)


kappa_cases = []
for _ in range(50):
    n = rng.randint(1, 80)
    cats = [str(c) for c in range(rng.randint(1, 5))]
    a = [rng.choice(cats) for _ in range(n)]
    b = [x if rng.random() < 0.6 else rng.choice(cats) for x in a]
    kappa_cases.append({"a": a, "b": b})

try:
    import numpy
except ImportError:
    sys.exit("FAILED: python3-numpy is not installed (the percentile reference); run deploy/setup.sh")
pct_cases = [{"values": [rng.uniform(-1, 1) for _ in range(rng.randint(1, 50))], "q": rng.choice([0.025, 0.5, 0.975, 0.0, 1.0])}
             for _ in range(40)]

# ---------------------------------------------------------------- run + compare
with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "cases.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"classification": cls_cases, "rouge": rouge_cases, "stem": stem_words, "squad": squad_cases,
                   "kappa": kappa_cases, "percentile": pct_cases}, f)
    res = subprocess.run([DUMP, path], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        sys.exit(f"{DUMP} failed: {res.stderr}")
    got = json.loads(res.stdout)

for i, c in enumerate(cls_cases):
    compare_report(sk_report(c["truth"], c["pred"], c.get("labels")), got["classification"][i], f"classification[{i}]")
    compare_sklearn(c["truth"], c["pred"], c.get("labels"), got["classification"][i], f"sklearn classification[{i}]")

for i, c in enumerate(rouge_cases):
    toks, p, r, f = rouge_l(c["target"], c["prediction"], c["stem"])
    g = got["rouge"][i]
    check(toks == g["tokens"], f"rouge[{i}] tokens {toks[:8]} vs {g['tokens'][:8]} (stem={c['stem']})")
    for a, b, what in ((p, g["precision"], "P"), (r, g["recall"], "R"), (f, g["fmeasure"], "F")):
        check(abs(a - b) <= TOL, f"rouge[{i}] {what} {a} vs {b}")

for w, g in zip(stem_words, got.get("stem", [])):
    check(STEMMER.stem(w) == g, f"stem({w!r}): nltk {STEMMER.stem(w)!r} vs {g!r}")

for i, c in enumerate(squad_cases):
    em = float(normalize_answer(c["prediction"]) == normalize_answer(c["reference"]))
    f1 = squad_f1(c["prediction"], c["reference"])
    check(em == got["squad"][i]["em"], f"squad[{i}] em")
    check(abs(f1 - got["squad"][i]["f1"]) <= TOL, f"squad[{i}] f1 {f1} vs {got['squad'][i]['f1']}")

for i, c in enumerate(kappa_cases):
    k, g = kappa(c["a"], c["b"]), got["kappa"][i]
    check((k is None and g is None) or (k is not None and g is not None and abs(k - g) <= 1e-9), f"kappa[{i}] {k} vs {g}")

for i, c in enumerate(pct_cases):
    ref = float(numpy.percentile(c["values"], c["q"] * 100))
    check(abs(ref - got["percentile"][i]) <= 1e-12, f"percentile[{i}] {ref} vs {got['percentile'][i]}")

print(f"classification cases: {len(cls_cases)}, rouge pairs: {len(rouge_cases)} "
      f"({sum(c['stem'] for c in rouge_cases)} stemmed), stemmer words: {len(stem_words)}, "
      f"squad: {len(squad_cases)}, kappa: {len(kappa_cases)}, percentile: {len(pct_cases)}")
if failures:
    print(f"{len(failures)} mismatches")
    sys.exit(1)
print("eval reference: all values match")

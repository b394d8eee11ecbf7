#!/usr/bin/python3
"""Independent reference for qlorad's drift statistics (core/monitor).

Computes PSI, Jensen-Shannon distance (base 2), the quantile length cut points
and a whole profile-vs-window comparison with numpy, feeds the same cases to
the C++ helper `drift_stats_dump` (argv[1]) and compares. The rules follow
core/monitor/drift_stats.h and drift_profile.h:
  PSI  = sum (c - r) * ln(c / r), proportions floored at 1e-4 (no renormalising)
  JS   = sqrt(0.5 KL(p||m) + 0.5 KL(q||m)), m = (p+q)/2, log base 2
  cuts = distinct ceil(np.quantile(lengths, j/B)), j = 1..B-1 (linear interpolation)
Run: /usr/bin/python3 tests/reference/drift_reference.py build/tests/core/monitor/drift_stats_dump
"""
import collections
import json
import math
import subprocess
import sys

import numpy as np

EPS = 1e-4


def psi(ref, cur):
    ref = np.asarray(ref, dtype=np.float64)
    cur = np.asarray(cur, dtype=np.float64)
    if ref.shape != cur.shape or ref.size == 0 or ref.sum() <= 0 or cur.sum() <= 0:
        return None
    r = np.maximum(ref / ref.sum(), EPS)
    c = np.maximum(cur / cur.sum(), EPS)
    return float(np.sum((c - r) * np.log(c / r)))


def js_distance(p, q):
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if p.shape != q.shape or p.size == 0 or p.sum() <= 0 or q.sum() <= 0:
        return None
    p = p / p.sum()
    q = q / q.sum()
    m = 0.5 * (p + q)

    def kl(a):
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / m[nz])))

    return math.sqrt(max(0.0, 0.5 * kl(p) + 0.5 * kl(q)))


def cut_points(values, bins):
    if len(values) == 0:
        return []
    qs = np.quantile(np.asarray(values, dtype=np.float64), [j / bins for j in range(1, bins)])
    out = []
    for v in np.ceil(qs):
        if not out or v > out[-1]:
            out.append(float(v))
    return out


def profile_case(reference, window, top_k, bins, rare_min):
    counts = collections.Counter(t for p in reference for t in p)
    total = sum(counts.values())
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top_k]
    top_ids = [k for k, _ in ranked]
    index = {t: i for i, t in enumerate(top_ids)}
    token_counts = [float(c) for _, c in ranked] + [float(total - sum(c for _, c in ranked))]
    cuts = cut_points([len(p) for p in reference], bins)
    # np.digitize(x, cuts, right=False): i such that cuts[i-1] <= x < cuts[i].
    length_counts = np.bincount(np.digitize([len(p) for p in reference], cuts),
                                minlength=len(cuts) + 1).astype(float)
    known = {t for t, c in counts.items() if c >= rare_min}
    ref_rare = sum(c for c in counts.values() if c <= rare_min) / total
    win_tok = np.zeros(len(top_ids) + 1)
    rare = 0
    n_tok = 0
    for p in window:
        for t in p:
            win_tok[index.get(t, len(top_ids))] += 1
            rare += t not in known
            n_tok += 1
    win_len = np.bincount(np.digitize([len(p) for p in window], cuts),
                          minlength=len(cuts) + 1).astype(float)
    p_len = psi(length_counts, win_len)
    j_tok = js_distance(token_counts, win_tok)
    band = max(0 if v < 0.1 else (1 if v <= 0.25 else 2) for v in (p_len, j_tok))
    return {
        "top_ids": top_ids, "token_counts": token_counts, "cut_points": cuts,
        "length_counts": list(length_counts), "reference_rare_rate": ref_rare,
        "report": {"window_size": len(window), "window_tokens": n_tok, "psi_length": p_len,
                   "js_tokens": j_tok, "rare_token_rate": rare / n_tok,
                   "rare_token_rate_delta": rare / n_tok - ref_rare,
                   "band": ["stable", "moderate", "significant"][band]},
    }


def make_cases():
    rng = np.random.default_rng(20261129)
    psi_cases = [
        ([10, 20, 30, 40], [10, 20, 30, 40]),             # identical -> 0
        ([10, 20, 30, 40], [40, 30, 20, 10]),
        ([0, 5, 5, 10], [3, 3, 3, 3]),                    # empty reference bin
        ([4, 4, 4, 4], [0, 0, 8, 8]),                     # empty current bins
        ([1, 0, 0, 0, 0], [0, 0, 0, 0, 1]),               # disjoint
        ([1000, 1], [1, 1000]),
        ([0.5, 0.25, 0.25], [0.2, 0.3, 0.5]),             # fractional "counts"
        ([1, 2], [1, 2, 3]),                              # size mismatch -> error
        ([0, 0, 0], [1, 1, 1]),                           # empty reference -> error
    ]
    for n in (2, 10, 50):
        for _ in range(3):
            ref = rng.integers(0, 50, n).astype(float)
            cur = rng.integers(0, 50, n).astype(float)
            ref[0] += 1
            cur[-1] += 1
            psi_cases.append((list(ref), list(cur)))
    js_cases = [
        ([1, 2, 3], [1, 2, 3]),                           # identical -> 0
        ([1, 0], [0, 1]),                                 # disjoint -> 1 (base 2)
        ([5, 0, 5], [0, 10, 0]),
        ([1, 1, 0, 0], [0, 1, 1, 0]),
        ([3, 1], [1, 3]),
        ([1, 2], [1, 2, 3]),                              # size mismatch -> error
    ]
    for n in (3, 17, 257):
        for _ in range(3):
            p = rng.integers(0, 20, n).astype(float)
            q = rng.integers(0, 20, n).astype(float)
            p[0] += 1
            q[1] += 1
            js_cases.append((list(p), list(q)))
    quant_cases = [([5.0] * 20, 10), ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 4), ([3], 10)]
    for bins in (2, 5, 10, 20):
        quant_cases.append((list(rng.integers(0, 100, int(rng.integers(5, 400))).astype(float)), bins))

    def prompts(n, vocab, zipf_a, max_len, offset=0):
        out = []
        for _ in range(n):
            length = int(rng.integers(0, max_len + 1))
            out.append([int(offset + (x - 1) % vocab) for x in rng.zipf(zipf_a, length)])
        return out

    profile_cases = [
        (prompts(300, 400, 1.3, 30), prompts(120, 400, 1.3, 30), 40, 10, 2),
        (prompts(300, 400, 1.3, 30), prompts(120, 900, 1.1, 80, offset=200), 40, 10, 2),
        (prompts(200, 60, 1.6, 12), prompts(50, 60, 1.6, 12), 500, 5, 1),  # k > vocab
        (prompts(200, 1000, 1.2, 25), prompts(80, 1000, 1.4, 6), 64, 8, 3),
    ]
    return psi_cases, js_cases, quant_cases, profile_cases


def close(a, b, what):
    if a is None or b is None:
        if a is not b:
            raise AssertionError(f"{what}: reference {a} vs C++ {b}")
        return
    if isinstance(a, str):
        if a != b:
            raise AssertionError(f"{what}: reference {a!r} vs C++ {b!r}")
        return
    if abs(a - b) > 1e-9 * max(1.0, abs(a)):
        raise AssertionError(f"{what}: reference {a!r} vs C++ {b!r}")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: drift_reference.py <path to drift_stats_dump>")
    psi_cases, js_cases, quant_cases, profile_cases = make_cases()
    request = {
        "psi": [{"ref": r, "cur": c} for r, c in psi_cases],
        "js": [{"p": p, "q": q} for p, q in js_cases],
        "quantile": [{"values": v, "bins": b} for v, b in quant_cases],
        "profiles": [{"reference": r, "window": w, "top_k": k, "length_bins": b,
                      "rare_min_count": m} for r, w, k, b, m in profile_cases],
    }
    result = subprocess.run([sys.argv[1]], input=json.dumps(request), capture_output=True,
                            text=True, check=True)
    got = json.loads(result.stdout)
    checked = 0
    for i, (r, c) in enumerate(psi_cases):
        close(psi(r, c), got["psi"][i], f"psi case {i} ref={r} cur={c}")
        checked += 1
    for i, (p, q) in enumerate(js_cases):
        close(js_distance(p, q), got["js"][i], f"js case {i} p={p} q={q}")
        checked += 1
    # Hand-checkable anchors (not only self-consistency): disjoint JS = 1, identical = 0.
    assert got["js"][0] == 0.0 and abs(got["js"][1] - 1.0) < 1e-12, got["js"][:2]
    assert got["psi"][0] == 0.0, got["psi"][0]
    # PSI of [4,4,4,4] vs [0,0,8,8] by hand: 2*(1e-4-.25)ln(1e-4/.25) + 2*(.5-.25)ln(2).
    by_hand = 2 * (EPS - 0.25) * math.log(EPS / 0.25) + 2 * 0.25 * math.log(2)
    close(by_hand, got["psi"][3], "psi by hand")
    for i, (v, b) in enumerate(quant_cases):
        want = cut_points(v, b)
        if len(want) != len(got["quantile"][i]):
            raise AssertionError(f"quantile case {i}: {want} vs {got['quantile'][i]}")
        for a, c in zip(want, got["quantile"][i]):
            close(a, c, f"quantile case {i}")
        checked += 1
    for i, case in enumerate(profile_cases):
        want = profile_case(*case)
        g = got["profiles"][i]
        if g is None:
            raise AssertionError(f"profile case {i}: C++ failed")
        if want["top_ids"] != g["top_ids"]:
            raise AssertionError(f"profile case {i}: top ids differ")
        for key in ("token_counts", "cut_points", "length_counts"):
            if len(want[key]) != len(g[key]):
                raise AssertionError(f"profile case {i} {key}: {want[key]} vs {g[key]}")
            for a, c in zip(want[key], g[key]):
                close(a, c, f"profile case {i} {key}")
        close(want["reference_rare_rate"], g["reference_rare_rate"], f"profile case {i} rare")
        for key, value in want["report"].items():
            close(value, g["report"][key], f"profile case {i} report.{key}")
        print(f"profile case {i}: psi_length={g['report']['psi_length']:.4f} "
              f"js_tokens={g['report']['js_tokens']:.4f} band={g['report']['band']}")
        checked += 1
    print(f"drift_reference: {checked} cases match the numpy reference")


if __name__ == "__main__":
    main()

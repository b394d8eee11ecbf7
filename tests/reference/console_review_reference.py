#!/usr/bin/python3
"""Reference numbers for console_review_core_test (tests/core/service): Cohen's kappa of
two reviewers' judgements from scikit-learn and the adapter's win rate with the Wilson
95 % interval from its closed form (statsmodels' proportion_confint(method="wilson")
formula). The judgements below are the test's; run this script to regenerate the
constants pasted into the test:  /usr/bin/python3 tests/reference/console_review_reference.py
"""
import json
import math

from sklearn.metrics import cohen_kappa_score

# Per item (10 items, in sample order): de-blinded ratings and preferences.
ALICE = dict(baseline=[3, 2, 3, 1, 2, 4, 4, 5, 3, 3], adapter=[5, 4, 4, 3, 4, 4, 2, 3, 3, 3],
             pref=["adapter"] * 6 + ["baseline"] * 2 + ["tie"] * 2)
BOB = dict(baseline=[3, 3, 3, 1, 2, 4, 5, 5, 3, 2], adapter=[5, 4, 5, 3, 3, 4, 2, 2, 3, 4],
           pref=["adapter"] * 4 + ["baseline", "tie", "baseline", "baseline", "tie", "adapter"])


def wilson(k, n, z=1.959963984540054):
    p = k / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return p, center - half, center + half


def main():
    # Ratings: each (item, system) is one judgement; the order only has to match.
    a = [str(x) for pair in zip(ALICE["baseline"], ALICE["adapter"]) for x in pair]
    b = [str(x) for pair in zip(BOB["baseline"], BOB["adapter"]) for x in pair]
    wins = ALICE["pref"].count("adapter") + BOB["pref"].count("adapter")
    losses = ALICE["pref"].count("baseline") + BOB["pref"].count("baseline")
    ties = ALICE["pref"].count("tie") + BOB["pref"].count("tie")
    rate, low, high = wilson(wins, wins + losses)
    print(json.dumps({
        "rating_kappa": repr(cohen_kappa_score(a, b)),
        "preference_kappa": repr(cohen_kappa_score(ALICE["pref"], BOB["pref"])),
        "wins": wins, "losses": losses, "ties": ties,
        "win_rate": repr(rate), "wilson_low": repr(low), "wilson_high": repr(high),
    }, indent=1))


if __name__ == "__main__":
    main()

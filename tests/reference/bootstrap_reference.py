"""An independent paired percentile bootstrap, written from the definitions (Efron's
percentile method; SplitMix64 by Steele/Lea/Flood; numpy.percentile's linear
interpolation), with scikit-learn computing the metric on every resample. qlorad's
core/eval/bootstrap.cc promises the same resampling stream, so the intervals must agree
to floating-point noise.

    paired_difference(references, treatment, control, metric, labels) -> (point, lower, upper)
"""
import numpy
from sklearn.metrics import accuracy_score, f1_score

MASK = (1 << 64) - 1


class SplitMix64:
    def __init__(self, seed):
        self.state = seed & MASK

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def uniform(self, n):
        """Uniform in [0, n) by rejection (no modulo bias)."""
        limit = MASK - MASK % n
        while True:
            x = self.next()
            if x < limit:
                return x % n


def metric_value(metric, truth, pred, labels):
    if metric == "accuracy":
        return accuracy_score(truth, pred)
    average = {"macro_f1": "macro", "weighted_f1": "weighted"}[metric]
    return f1_score(truth, pred, labels=labels, average=average, zero_division=0)


def paired_difference(references, treatment, control, metric, labels, resamples=1000, confidence=0.95, seed=0x5EED):
    """95 % paired percentile interval of metric(treatment) - metric(control)."""
    n = len(references)
    rng = SplitMix64(seed)
    refs, a, b = numpy.array(references), numpy.array(treatment), numpy.array(control)
    replicates = []
    for _ in range(resamples):
        idx = [rng.uniform(n) for _ in range(n)]
        replicates.append(metric_value(metric, refs[idx], a[idx], labels) - metric_value(metric, refs[idx], b[idx], labels))
    alpha = 1 - confidence
    point = metric_value(metric, refs, a, labels) - metric_value(metric, refs, b, labels)
    return point, float(numpy.percentile(replicates, 100 * alpha / 2)), float(numpy.percentile(replicates, 100 * (1 - alpha / 2)))

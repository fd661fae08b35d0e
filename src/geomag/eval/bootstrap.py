"""Paired bootstrap intervals for "A minus B" on the same samples.

One helper for every comparison GeoMag prints (the MagCrop ablation's on - off, `geomag eval --compare`):
a difference is only "better" or "worse" when its 95 % interval excludes zero, so a 100-sample row
cannot be read as a win from noise. Samples are resampled in pairs (the same indices for both arms),
which is what makes the interval tight where the arms agree on most samples.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

Metric = Callable[[np.ndarray], float]
"""A figure computed from a subset of per-sample records, given as the indices of that subset."""


@dataclass(frozen=True)
class PairedDifference:
    """A - B on the full sample set, with a percentile bootstrap interval of the same statistic."""

    a: float
    b: float
    diff: float
    low: float
    high: float
    n: int

    @property
    def verdict(self) -> str:
        """'better' / 'worse' when the interval excludes 0, otherwise 'within noise'."""
        if self.n == 0:
            return "no samples"
        if self.low > 0:
            return "better"
        if self.high < 0:
            return "worse"
        return "within noise"

    def to_dict(self) -> dict[str, float | int | str]:
        return {
            "a": self.a,
            "b": self.b,
            "diff": self.diff,
            "low": self.low,
            "high": self.high,
            "n": self.n,
            "verdict": self.verdict,
        }


def paired_bootstrap(
    metric_a: Metric,
    metric_b: Metric,
    n: int,
    *,
    resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> PairedDifference:
    """Interval of metric_a - metric_b over `n` paired samples.

    The metrics take an index array (with repeats) so corpus-level figures (oIoU, CIDEr, RSVQA's
    per-type accuracy) are bootstrapped as what they are, not as a mean of per-sample scores.
    """
    if n == 0:
        return PairedDifference(float("nan"), float("nan"), float("nan"), float("nan"), float("nan"), 0)
    full = np.arange(n)
    a, b = float(metric_a(full)), float(metric_b(full))
    rng = np.random.default_rng(seed)
    diffs = np.empty(resamples, dtype=np.float64)
    for i in range(resamples):
        idx = rng.integers(0, n, size=n)
        diffs[i] = float(metric_a(idx)) - float(metric_b(idx))
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.nanpercentile(diffs, [tail, 100.0 - tail])
    return PairedDifference(a, b, a - b, float(low), float(high), n)


def paired_mean_bootstrap(
    a: Sequence[float], b: Sequence[float], *, resamples: int = 2000, seed: int = 0
) -> PairedDifference:
    """The common case: both figures are means of per-sample scores (accuracy, P@0.5, mIoU)."""
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} vs {len(b)}")
    xa = np.asarray(a, dtype=np.float64)
    xb = np.asarray(b, dtype=np.float64)
    return paired_bootstrap(
        lambda idx: float(xa[idx].mean()),
        lambda idx: float(xb[idx].mean()),
        len(xa),
        resamples=resamples,
        seed=seed,
    )

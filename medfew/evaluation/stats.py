"""Mean and confidence interval over episodes or seeds; paired comparison of two learners.

The paired tests compare two learners scored on the same units (the same episodes, or
the same seeds' label subsets): a paired bootstrap of the mean difference (Efron &
Tibshirani, "An Introduction to the Bootstrap", 1993) and the Wilcoxon signed-rank test
(Wilcoxon, "Individual comparisons by ranking methods", 1945) through scipy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Estimate:
    """Mean of ``n`` values with a two-sided confidence interval mean ± half_width."""

    mean: float
    half_width: float
    n: int

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> Estimate:
    """Student-t interval: mean ± t_{(1+c)/2, n-1} * s / sqrt(n); half width NaN when n < 2."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return Estimate(float("nan"), float("nan"), 0)
    if len(x) < 2:
        return Estimate(float(x[0]), float("nan"), 1)
    sem = x.std(ddof=1) / np.sqrt(len(x))
    return Estimate(float(x.mean()), float(stats.t.ppf((1 + confidence) / 2, len(x) - 1) * sem), len(x))


@dataclass(frozen=True)
class PairedComparison:
    """a - b on paired units: mean difference, its bootstrap interval and two p-values."""

    mean_diff: float
    low: float
    high: float
    p_bootstrap: float
    p_wilcoxon: float
    n: int


def paired_bootstrap(
    a: Sequence[float], b: Sequence[float], n_resamples: int = 10_000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """Percentile interval of mean(a - b) over resampled units, and a two-sided p-value.

    The p-value is 2 * min(P*(mean diff <= 0), P*(mean diff >= 0)) under the bootstrap
    distribution (capped at 1): small when the resampled differences keep one sign.
    """
    diff = paired_differences(a, b)
    generator = np.random.default_rng(seed)
    means = diff[generator.integers(0, len(diff), size=(n_resamples, len(diff)))].mean(axis=1)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    p_value = min(1.0, 2 * min((means <= 0).mean(), (means >= 0).mean()))
    return float(low), float(high), float(p_value)


def wilcoxon_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided Wilcoxon signed-rank p-value of a - b (exact for small n); 1 when a == b."""
    diff = paired_differences(a, b)
    if not np.any(diff):
        return 1.0
    return float(stats.wilcoxon(diff, alternative="two-sided").pvalue)


def paired_comparison(a: Sequence[float], b: Sequence[float], n_resamples: int = 10_000, seed: int = 0) -> PairedComparison:
    """Both paired tests of a versus b (same length, unit i of a paired with unit i of b)."""
    diff = paired_differences(a, b)
    low, high, p_boot = paired_bootstrap(a, b, n_resamples=n_resamples, seed=seed)
    return PairedComparison(float(diff.mean()), low, high, p_boot, wilcoxon_p(a, b), len(diff))


def paired_differences(a: Sequence[float], b: Sequence[float]) -> np.ndarray:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(f"paired comparison needs two equal-length, non-empty vectors; got {a.shape} and {b.shape}")
    keep = ~(np.isnan(a) | np.isnan(b))
    return a[keep] - b[keep]

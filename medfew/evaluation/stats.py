"""Mean and confidence interval over units (episodes, or folds x seeds); paired comparisons.

Intervals of scores bounded to [0, 1] are percentile bootstrap intervals of the mean (Efron &
Tibshirani, "An Introduction to the Bootstrap", 1993) from ``scipy.stats.bootstrap``: they lie
within the observed range, so never outside [0, 1]. The percentile method rather than BCa,
because BCa is undefined on constant samples (every episode scored 1.0), which small runs
produce. The paired tests compare two learners scored on the same units: a paired bootstrap of
the mean difference and the Wilcoxon signed-rank test (Wilcoxon, "Individual comparisons by
ranking methods", 1945), with Holm's correction (Holm, "A simple sequentially rejective
multiple test procedure", 1979) across the comparisons of one table. Fewer than two units
give no interval and no p-value, and say so in ``reason``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Estimate:
    """Mean of ``n`` values with a two-sided confidence interval [low, high] (NaN, and a reason, when none)."""

    mean: float
    low: float
    high: float
    n: int
    reason: str = ""

    @property
    def half_width(self) -> float:
        """(high - low) / 2: the ± of a symmetric interval."""
        return (self.high - self.low) / 2


def no_interval(values: np.ndarray) -> Estimate | None:
    """The estimate of fewer than two values (mean or NaN, no interval, and why); None otherwise."""
    if len(values) == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0, "n = 0: no value")
    if len(values) == 1:
        return Estimate(float(values[0]), float("nan"), float("nan"), 1, "n = 1: no interval")
    return None


def without_inf(values: Sequence[float]) -> np.ndarray:
    """``values`` as a float array; raise on inf (a score is finite, or NaN when undefined)."""
    x = np.asarray(values, dtype=float)
    if np.isinf(x).any():
        raise ValueError(f"infinite value among {x.tolist()}: a score must be finite or NaN (undefined)")
    return x


def finite(values: Sequence[float]) -> np.ndarray:
    """``values`` as a float vector without NaN (an undefined score); inf is an error."""
    x = without_inf(values).ravel()
    return x[~np.isnan(x)]


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> Estimate:
    """Student-t interval mean ± t_{(1+c)/2, n-1} * s / sqrt(n), for unbounded quantities; NaN is left out."""
    x = finite(values)
    if (few := no_interval(x)) is not None:
        return few
    half = stats.t.ppf((1 + confidence) / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
    return Estimate(float(x.mean()), float(x.mean() - half), float(x.mean() + half), len(x))


def bootstrap_ci(values: Sequence[float], confidence: float = 0.95, n_resamples: int = 10_000, seed: int = 0) -> Estimate:
    """Percentile bootstrap interval of the mean, inside the range of the values; NaN is left out."""
    x = finite(values)
    if (few := no_interval(x)) is not None:
        return few
    result = stats.bootstrap(
        (x,), np.mean, n_resamples=n_resamples, confidence_level=confidence, method="percentile", rng=np.random.default_rng(seed)
    )
    low, high = np.clip(result.confidence_interval, x.min(), x.max())  # exact range despite rounding in the quantiles
    return Estimate(float(x.mean()), float(low), float(high), len(x))


@dataclass(frozen=True)
class PairedComparison:
    """a - b on paired units: mean difference, its bootstrap interval and two p-values (NaN, and a reason, when n < 2)."""

    mean_diff: float
    low: float
    high: float
    p_bootstrap: float
    p_wilcoxon: float
    n: int
    reason: str = ""


def paired_bootstrap(
    a: Sequence[float], b: Sequence[float], n_resamples: int = 10_000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """Percentile interval of mean(a - b) over resampled units (``paired=True``), and a two-sided p-value.

    The p-value is 2 * min(P*(mean diff <= 0), P*(mean diff >= 0)) under the bootstrap
    distribution (capped at 1): small when the resampled differences keep one sign.
    Needs at least two complete pairs.
    """
    a, b = paired_values(a, b)
    if len(a) < 2:
        raise ValueError(f"a paired bootstrap needs two or more complete pairs; got {len(a)}")
    result = stats.bootstrap(
        (a, b), lambda x, y, axis: np.mean(x - y, axis=axis), paired=True, vectorized=True, n_resamples=n_resamples,
        confidence_level=confidence, method="percentile", rng=np.random.default_rng(seed),
    )  # fmt: skip
    means, diff = result.bootstrap_distribution, a - b
    p_value = min(1.0, 2 * min((means <= 0).mean(), (means >= 0).mean()))
    low, high = np.clip(result.confidence_interval, diff.min(), diff.max())
    return float(low), float(high), float(p_value)


def wilcoxon_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided Wilcoxon signed-rank p-value of a - b (exact for small n, zero differences dropped); 1 when a == b."""
    a, b = paired_values(a, b)
    diff = a - b
    if not np.any(diff):
        return 1.0
    return float(stats.wilcoxon(diff, alternative="two-sided").pvalue)


def paired_comparison(
    a: Sequence[float], b: Sequence[float], n_resamples: int = 10_000, confidence: float = 0.95, seed: int = 0
) -> PairedComparison:
    """Both paired tests of a versus b (unit i of a paired with unit i of b; pairs with a NaN are left out)."""
    a, b = paired_values(a, b)
    if len(a) < 2:
        mean_diff = float((a - b).mean()) if len(a) else float("nan")
        nan = float("nan")
        return PairedComparison(mean_diff, nan, nan, nan, nan, len(a), f"n = {len(a)}: no test")
    low, high, p_boot = paired_bootstrap(a, b, n_resamples, confidence, seed)
    return PairedComparison(float((a - b).mean()), low, high, p_boot, wilcoxon_p(a, b), len(a))


def paired_values(a: Sequence[float], b: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """The pairs of two equal-length vectors where neither value is NaN."""
    a, b = without_inf(a), without_inf(b)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired comparison needs two equal-length vectors; got shapes {a.shape} and {b.shape}")
    keep = ~(np.isnan(a) | np.isnan(b))
    return a[keep], b[keep]


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm-adjusted p-values (family = the non-NaN entries; NaN stays NaN).

    The i-th smallest of m p-values becomes max over j <= i of min(1, (m - j + 1) * p_(j));
    rejecting where the adjusted p < alpha controls the family-wise error rate at alpha.
    """
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full_like(p, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    order = tested[np.argsort(p[tested], kind="stable")]
    scaled = np.minimum(1.0, (len(order) - np.arange(len(order))) * p[order])
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted

"""Confidence intervals and paired tests against hand-computed values."""

import math

import numpy as np
import pytest

from medfew.evaluation.stats import mean_ci, paired_bootstrap, paired_comparison, wilcoxon_p


def test_t_interval_matches_hand_computation():
    # mean 3, s = sqrt(2.5), sem = sqrt(0.5), t_{0.975, 4} = 2.776445
    estimate = mean_ci([1, 2, 3, 4, 5])
    assert estimate.mean == 3
    assert estimate.half_width == pytest.approx(2.776445 * math.sqrt(0.5), abs=1e-5)
    assert (estimate.low, estimate.high) == pytest.approx((3 - 1.963243, 3 + 1.963243), abs=1e-5)
    assert estimate.n == 5


def test_t_interval_of_two_values_and_of_one():
    # n = 2: t_{0.975, 1} = 12.706205, sem = |a - b| / 2
    assert mean_ci([0.6, 0.8]).half_width == pytest.approx(12.706205 * 0.1, abs=1e-6)
    single = mean_ci([0.7])
    assert single.mean == 0.7 and math.isnan(single.half_width)
    assert mean_ci([0.5, float("nan"), 0.7]).n == 2  # NaN (e.g. an undefined AUROC) is left out


def test_wilcoxon_exact_p_values():
    b = np.zeros(6)
    # all six differences positive: the most extreme of 2^6 sign patterns, two-sided p = 2 / 64
    assert wilcoxon_p(np.arange(1, 7), b) == pytest.approx(2 / 64)
    # differences 1, -2, 3, 4, 5, 6: W- = 2; P(W- <= 2) = 3 / 64 (subsets {}, {1}, {2}); p = 6 / 64
    assert wilcoxon_p(np.array([1, -2, 3, 4, 5, 6]), b) == pytest.approx(6 / 64)
    assert wilcoxon_p([0.5, 0.6], [0.5, 0.6]) == 1.0


def test_paired_bootstrap_constructed_cases():
    a = np.array([0.70, 0.72, 0.75, 0.71, 0.74, 0.73])
    # b is a shifted down by exactly 0.05 on every unit: the difference is certain
    low, high, p = paired_bootstrap(a, a - 0.05)
    assert (low, high) == pytest.approx((0.05, 0.05))
    assert p == 0.0
    # differences +1, -1, +1, -1, ...: mean 0, resampled means symmetric around 0
    low, high, p = paired_bootstrap(np.tile([1.0, -1.0], 10), np.zeros(20))
    assert p == 1.0 and low < 0 < high


def test_paired_comparison_reports_both_tests():
    a, b = np.arange(1, 7) / 10, np.zeros(6)
    result = paired_comparison(a, b)
    assert result.mean_diff == pytest.approx(0.35)
    assert result.p_wilcoxon == pytest.approx(2 / 64)
    assert result.p_bootstrap == 0.0
    assert result.n == 6
    with pytest.raises(ValueError, match="equal-length"):
        paired_comparison([1, 2], [1, 2, 3])

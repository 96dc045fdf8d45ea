"""Confidence intervals, paired tests and Holm's correction against hand-computed values."""

import math

import numpy as np
import pytest

from medfew.evaluation.stats import bootstrap_ci, holm, mean_ci, paired_bootstrap, paired_comparison, wilcoxon_p


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
    assert single.mean == 0.7 and math.isnan(single.half_width) and single.reason == "n = 1: no interval"
    assert mean_ci([0.5, float("nan"), 0.7]).n == 2  # NaN (e.g. an undefined AUROC) is left out


def test_bootstrap_interval_of_two_episodes_stays_in_their_range():
    # the issue: accuracies 0.25 and 0.5 gave "0.375 ± 1.588" (t interval). Resampled means are
    # 0.25, 0.375, 0.5 with probabilities 1/4, 1/2, 1/4: the 95% percentile interval is [0.25, 0.5]
    estimate = bootstrap_ci([0.25, 0.5])
    assert (estimate.mean, estimate.low, estimate.high, estimate.n) == (0.375, 0.25, 0.5, 2)


def test_bootstrap_interval_of_constant_and_tiny_samples():
    constant = bootstrap_ci([1.0, 1.0, 1.0])
    assert (constant.low, constant.high) == (1.0, 1.0)  # every episode scored 1: BCa would be undefined
    single, empty = bootstrap_ci([0.7, float("nan")]), bootstrap_ci([])
    assert single.mean == 0.7 and single.n == 1 and math.isnan(single.low) and single.reason == "n = 1: no interval"
    assert math.isnan(empty.mean) and empty.n == 0 and empty.reason == "n = 0: no value"
    with pytest.raises(ValueError, match="infinite value"):
        bootstrap_ci([0.5, float("inf")])


def test_bootstrap_interval_of_many_values_matches_the_normal_interval():
    x = np.random.default_rng(0).uniform(0, 1, 400)
    estimate = bootstrap_ci(x, n_resamples=20_000)
    half = 1.959964 * x.std(ddof=1) / math.sqrt(len(x))
    assert (estimate.low, estimate.high) == pytest.approx((x.mean() - half, x.mean() + half), abs=0.003)


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
    with pytest.raises(ValueError, match="two or more complete pairs; got 1"):
        paired_bootstrap([0.5, float("nan")], [0.4, 0.3])


def test_paired_comparison_reports_both_tests():
    a, b = np.arange(1, 7) / 10, np.zeros(6)
    result = paired_comparison(a, b)
    assert result.mean_diff == pytest.approx(0.35)
    assert result.p_wilcoxon == pytest.approx(2 / 64)
    assert result.p_bootstrap == 0.0
    assert result.n == 6 and result.reason == ""
    with pytest.raises(ValueError, match="equal-length"):
        paired_comparison([1, 2], [1, 2, 3])


def test_paired_comparison_of_fewer_than_two_pairs_has_no_test():
    one = paired_comparison([0.8, float("nan")], [0.6, 0.5])
    assert one.mean_diff == pytest.approx(0.2) and one.n == 1 and one.reason == "n = 1: no test"
    assert math.isnan(one.p_wilcoxon) and math.isnan(one.p_bootstrap) and math.isnan(one.low)
    none = paired_comparison([float("nan")], [0.5])
    assert none.n == 0 and math.isnan(none.mean_diff) and none.reason == "n = 0: no test"


def test_holm_on_a_hand_made_family():
    # sorted 0.01, 0.03, 0.04, 0.5 (m = 4): x4, x3, x2, x1 = 0.04, 0.09, 0.08, 0.5; running max 0.04, 0.09, 0.09, 0.5
    adjusted = holm([0.01, 0.04, 0.03, float("nan"), 0.5])
    assert adjusted[[0, 1, 2, 4]] == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert math.isnan(adjusted[3])
    assert holm([0.3, 0.6]) == pytest.approx([0.6, 0.6])  # 0.3 x 2 and 0.6 x 1
    assert holm([0.6, 0.4]) == pytest.approx([0.8, 0.8])  # 0.4 x 2, then the running maximum lifts 0.6 x 1
    assert holm([0.7, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([]).shape == (0,)

"""Property-based tests: metrics, statistics and the summary on hostile inputs give a clear error or a correct number.

Random n_way, label sets with classes missing, probability matrices with exact ties and
zeros, samples of 0, 1, 2 or a few values with NaN among them. Metrics are checked against
independent numpy definitions; every NaN that reaches a summary carries its reason.
"""

import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from medfew.evaluation.metrics import classification_metrics
from medfew.evaluation.report import markdown, summarize, summary_table, to_frame
from medfew.evaluation.stats import bootstrap_ci, holm, paired_comparison

BOUNDED = settings(max_examples=40, deadline=None)
scores = st.one_of(st.floats(0, 1), st.just(float("nan")))


@st.composite
def tasks(draw) -> tuple[torch.Tensor, torch.Tensor]:
    """(probs, labels): n_way 1..6, labels drawn from a random subset of the classes, integer weights (ties, zeros)."""
    n_way = draw(st.integers(1, 6))
    present = draw(st.lists(st.integers(0, n_way - 1), min_size=1, max_size=n_way, unique=True))
    labels = draw(st.lists(st.sampled_from(present), min_size=1, max_size=20))
    weights = np.array(draw(st.lists(st.lists(st.integers(0, 3), min_size=n_way, max_size=n_way), min_size=len(labels), max_size=len(labels))), float)
    weights += weights.sum(axis=1, keepdims=True) == 0  # an all-zero row becomes uniform
    return torch.tensor(weights / weights.sum(axis=1, keepdims=True), dtype=torch.float32), torch.tensor(labels)


def reference_metrics(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Accuracy, and balanced accuracy, macro-F1 and Mann-Whitney AUROC over the present classes, in numpy."""
    predicted, present = probs.argmax(axis=1), np.unique(labels)
    recall = [np.mean(predicted[labels == c] == c) for c in present]
    f1 = [2 * np.sum((predicted == c) & (labels == c)) / (np.sum(predicted == c) + np.sum(labels == c)) for c in present]
    auroc = []
    for c in present if len(present) > 1 else []:
        positive, negative = probs[labels == c, c][:, None], probs[labels != c, c][None, :]
        auroc.append(np.mean(positive > negative) + 0.5 * np.mean(positive == negative))
    return {
        "acc": np.mean(predicted == labels), "bal_acc": np.mean(recall), "macro_f1": np.mean(f1),
        "auroc": np.mean(auroc) if auroc else math.nan, "n_present": len(present),
    }  # fmt: skip


@BOUNDED
@given(tasks())
def test_metrics_match_their_definitions_on_any_task(task):
    probs, labels = task
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning from torchmetrics either
        m = classification_metrics(probs, labels)
    expected = reference_metrics(probs.numpy(), labels.numpy())
    assert {k: m[k] for k in expected} == pytest.approx(expected, abs=1e-6, nan_ok=True)
    # ECE = sum_b w_b |acc_b - conf_b| >= |acc - mean confidence|, whatever the bins
    assert 1 + 1e-6 >= m["ece"] >= abs(m["acc"] - probs.max(dim=1).values.mean().item()) - 1e-6


@BOUNDED
@given(tasks(), st.integers(-2, 8))
def test_labels_outside_the_classes_are_a_clear_error(task, bad):
    probs, labels = task
    if 0 <= bad < probs.shape[1]:
        return
    with pytest.raises(ValueError, match=rf"labels -?\d+\.\.-?\d+ outside 0\.\.{probs.shape[1] - 1}"):
        classification_metrics(torch.cat([probs, probs[:1]]), torch.cat([labels, torch.tensor([bad])]))


@BOUNDED
@given(st.lists(scores, max_size=6))
def test_bootstrap_interval_is_inside_the_values_or_explained(values):
    estimate = bootstrap_ci(values, n_resamples=200)
    x = np.array([v for v in values if not math.isnan(v)])
    assert estimate.n == len(x)
    if len(x) < 2:
        assert math.isnan(estimate.low) and estimate.reason == f"n = {len(x)}: " + ("no value" if len(x) == 0 else "no interval")
    else:
        assert x.min() - 1e-12 <= estimate.low <= estimate.high <= x.max() + 1e-12 and estimate.reason == ""


@BOUNDED
@given(st.integers(0, 6).flatmap(lambda n: st.tuples(st.lists(scores, min_size=n, max_size=n), st.lists(scores, min_size=n, max_size=n))))
def test_paired_comparison_is_a_test_or_says_why_not(pair):
    a, b = map(np.array, pair)
    keep = ~(np.isnan(a) | np.isnan(b))
    result = paired_comparison(a, b, n_resamples=200)
    assert result.n == keep.sum()
    if result.n < 2:
        assert result.reason == f"n = {result.n}: no test" and math.isnan(result.p_wilcoxon) and math.isnan(result.p_bootstrap)
    else:
        diff = a[keep] - b[keep]
        assert 0 <= result.p_wilcoxon <= 1 and 0 <= result.p_bootstrap <= 1 and result.reason == ""
        assert diff.min() - 1e-12 <= result.low <= result.high <= diff.max() + 1e-12
        assert result.mean_diff == pytest.approx(diff.mean())


@BOUNDED
@given(st.lists(st.one_of(st.floats(0, 1), st.just(float("nan"))), max_size=8), st.floats(0.001, 0.2))
def test_holm_rejects_what_the_step_down_procedure_rejects(p, alpha):
    adjusted = holm(p)
    p = np.array(p, dtype=float)
    assert np.array_equal(np.isnan(adjusted), np.isnan(p))
    tested = np.flatnonzero(~np.isnan(p))
    assert np.all(adjusted[tested] >= p[tested]) and np.all(adjusted[tested] <= 1)
    # step-down: walk the sorted p-values, reject while p_(k) <= alpha / (m - k), stop at the first that is not
    rejected = set()
    for k, i in enumerate(tested[np.argsort(p[tested], kind="stable")]):
        if p[i] > alpha / (len(tested) - k):
            break
        rejected.add(i)
    assert {i for i in tested if adjusted[i] <= alpha} == rejected


@st.composite
def result_rows(draw) -> tuple[list[dict[str, str]], str]:
    """Rows as the csv module reads them: random learners, settings, folds, seeds, episodes; scores may be "nan" or ""."""
    rows = []
    n_episodes = draw(st.integers(1, 2))
    for learner in draw(st.lists(st.sampled_from(["finetune", "protonet", "maml"]), min_size=1, max_size=3, unique=True)):
        for setting in draw(st.lists(st.sampled_from(["per_class=5", "per_class=10"]), min_size=1, max_size=2, unique=True)):
            for fold in ("repeat0-fold0", "repeat0-fold1")[: draw(st.integers(1, 2))]:
                for seed in range(draw(st.integers(1, 3))):
                    for episode in range(n_episodes):
                        score = {m: draw(st.one_of(st.floats(0, 1).map(str), st.sampled_from(["nan", ""]))) for m in ("acc", "bal_acc", "macro_f1", "auroc", "ece")}
                        rows.append(
                            dict(
                                dataset="toy", protocol="label_budget", fold=fold, data_hash=f"{fold:>16}", learner=learner,
                                setting=setting, kind="per_class", value=setting.split("=")[1], seed=str(seed), split_hash="s",
                                episode=str(episode), n_way="2", n_present=str(draw(st.integers(1, 2))), n_support=str(draw(st.integers(1, 20))),
                                confusion='{"classes": ["a", "b"], "counts": [[1, 0], [1, 2]]}', **score,
                            )
                        )  # fmt: skip
    return rows, draw(st.sampled_from(["finetune", "absent"]))


@settings(max_examples=25, deadline=None)
@given(result_rows())
def test_summary_of_any_rows_has_a_reason_for_every_missing_number(case):
    rows, reference = case
    summary = summarize(to_frame(rows), ("bal_acc", "auroc", "ece"), reference, n_resamples=200)
    text = markdown(summary, n_resamples=200)
    assert "nan" not in text.lower().replace("nan in the results", "")
    assert "n/a ()" not in text and "()" not in text
    table = summary_table(summary)
    no_value = table[table["mean"].isna()]
    assert (no_value["reason"].str.len() > 0).all()
    with_interval = table[table["n"] >= 2]
    assert ((0 <= with_interval["low"]) & (with_interval["low"] <= with_interval["high"]) & (with_interval["high"] <= 1)).all()
    assert table[table["n"] < 2]["low"].isna().all() and (table[table["n"] < 2]["reason"].str.len() > 0).all()

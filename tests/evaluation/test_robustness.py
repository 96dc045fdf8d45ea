"""Robustness conditions: the same corrupted test images and flipped training labels for every learner,
rows that never pool across conditions, and results files written before the condition columns."""

import csv
import math
from pathlib import Path

import pytest
import torch

from medfew.evaluation import compare
from medfew.evaluation.protocols import Task
from medfew.evaluation.results import COLUMNS, ADDED, ResultsFile
from medfew.evaluation.robustness import Condition, Robustness

OVERRIDES = [
    "protocol.per_class=[10]", "protocol.fractions=[]", "seeds=[0]", "data.image_size=16",
    "learners=[prototype_pixels,logreg_pixels]", "report.reference=logreg_pixels", "report.n_resamples=200",
    "protocol.corruptions=[gaussian_noise,blur]", "protocol.severities=[1,5]", "protocol.label_noise=[0.0,0.4]",
]  # fmt: skip


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def task(n_support: int = 20, n_query: int = 10) -> Task:
    generator = torch.Generator().manual_seed(0)
    return Task(
        support=torch.rand(n_support, 1, 8, 8, generator=generator),
        support_labels=torch.arange(2).repeat(n_support // 2),
        query=torch.rand(n_query, 1, 8, 8, generator=generator),
        query_labels=torch.arange(2).repeat(n_query // 2),
        classes=("a", "b"),
        val=(torch.rand(10, 1, 8, 8, generator=generator), torch.arange(2).repeat(5)),
    )


def test_label_noise_flips_only_training_labels_at_the_rate():
    original, robustness = task(), Robustness.of(label_noise=[0.0, 0.2])
    noisy = robustness.training(original, Condition(label_noise=0.2), seed=3)
    assert int((noisy.support_labels != original.support_labels).sum()) == 4  # 20 % of 20
    assert int((noisy.val[1] != original.val[1]).sum()) == 2  # 20 % of 10
    assert torch.equal(noisy.query_labels, original.query_labels) and torch.equal(noisy.query, original.query)
    assert torch.equal(noisy.support, original.support)
    again = robustness.training(original, Condition(label_noise=0.2), seed=3)
    assert torch.equal(again.support_labels, noisy.support_labels)
    assert robustness.training(original, Condition(), seed=3) is original


def test_corruptions_change_the_query_only_and_each_condition_has_its_own_split_hash():
    robustness = Robustness.of(corruptions=["blur", "jpeg"], severities=[1, 5], label_noise=[0.0, 0.2])
    conditions = [c for group in robustness.groups() for c in group]
    assert [c.name for c in conditions] == ["clean", "blur@1", "blur@5", "jpeg@1", "jpeg@5", "label_noise=0.2"]
    hashes = {robustness.split_hash("base", c) for c in conditions}
    assert len(hashes) == len(conditions) and robustness.split_hash("base", Condition()) == "base"
    original = task()
    blurred = robustness.query(original, Condition("blur", 5), seed=0)
    assert blurred.shape == original.query.shape and not torch.equal(blurred, original.query)
    assert robustness.query(original, Condition(), seed=0) is original.query


def test_bad_robustness_options_name_the_value():
    with pytest.raises(ValueError, match="unknown corruption 'fog'"):
        Robustness.of(corruptions=["fog"])
    with pytest.raises(ValueError, match="severity must be an integer in 1..5, got 0"):
        Robustness.of(corruptions=["blur"], severities=[0])
    with pytest.raises(ValueError, match="unknown label noise mode"):
        Robustness.of(label_noise=[0.2], label_noise_mode="asym")


def test_a_comparison_scores_every_condition_on_the_same_images_for_every_learner(breastmnist, compose_root, tmp_path):
    summary = compare(compose_root("config", tmp_path, OVERRIDES))
    rows = read_rows(tmp_path / "results.csv")
    assert len(rows) == 2 * (1 + 2 * 2 + 1)  # learners x (clean, 2 corruptions x 2 severities, 1 label noise)
    by_condition = {}
    for row in rows:
        by_condition.setdefault((row["corruption"], row["severity"], row["label_noise"]), set()).add(row["split_hash"])
    assert all(len(hashes) == 1 for hashes in by_condition.values())  # both learners, the same tasks
    assert len({next(iter(h)) for h in by_condition.values()}) == len(by_condition)  # conditions never share one
    clean = [r for r in rows if r["corruption"] == "none" and r["label_noise"] == "0.0"]
    table = summary["results"]["bal_acc"]
    assert table["logreg_pixels"]["per_class=10"]["n"] == 1  # the tables pool the clean rows only
    assert table["logreg_pixels"]["per_class=10"]["mean"] == pytest.approx(float(next(r for r in clean if r["learner"] == "logreg_pixels")["bal_acc"]))
    found = summary["robustness"]["per_class=10"]
    assert set(found["corruptions"]) == {"gaussian_noise", "blur"} and set(found["label_noise"]["logreg_pixels"]) == {"0", "0.4"}
    noisy = found["corruptions"]["gaussian_noise"]["prototype_pixels"]["5"]
    assert noisy["n"] == 1 and not math.isnan(noisy["change"])
    text = (tmp_path / "summary.md").read_text()
    assert "## Robustness (bal_acc, relative change from clean)" in text and "| logreg_pixels | blur |" in text
    assert "40 % flipped" in text and "Ranking by bal_acc" in text
    assert (tmp_path / "robustness_per_class_10.png").exists() and (tmp_path / "label_noise_per_class_10.png").exists()
    compare(compose_root("config", tmp_path, OVERRIDES))  # a rerun resumes: nothing scored twice
    assert len(read_rows(tmp_path / "results.csv")) == len(rows)
    changed = [*OVERRIDES, "protocol.label_noise_mode=pairwise"]
    with pytest.raises(ValueError, match="label_noise=0.4, seed 0 was scored on .* what differs: protocol.label_noise_mode"):
        compare(compose_root("config", tmp_path, changed))


def test_results_written_before_the_condition_columns_are_read_as_clean(tmp_path):
    old = [c for c in COLUMNS if c not in ADDED]
    path = tmp_path / "results.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=old)
        writer.writeheader()
        writer.writerow({c: "1" for c in old})
    (row,) = ResultsFile(path).read()
    assert Condition.from_row(row) == Condition() and row["corruption"] == "none" and row["label_noise"] == "0.0"
    ResultsFile(path).append([])
    assert tuple(read_rows(path)[0]) == COLUMNS  # rewritten with every column


def test_preparation_sees_the_flips_the_task_adapts_on(breastmnist):
    from medfew.evaluation.protocols import LabelBudgetProtocol

    protocol = LabelBudgetProtocol(breastmnist, per_class=[10], label_noise=[0.0, 0.3])
    setting, condition = protocol.settings()[0], Condition(label_noise=0.3)
    original = next(protocol.tasks(setting, seed=0))
    noisy = protocol.robustness.training(original, condition, seed=5)
    context = protocol.robustness.context(protocol.context(setting, 0, Path("work")), condition, seed=5)
    assert torch.equal(context.base.labels, noisy.support_labels) and torch.equal(context.val.labels, noisy.val[1])
    assert int((noisy.support_labels != original.support_labels).sum()) == 6  # 30 % of 20

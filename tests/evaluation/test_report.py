"""summary.md / summary.json / plots from constructed result rows with known statistics."""

import json
from pathlib import Path

import pytest

from medfew.evaluation.report import write_report


def row(learner: str, seed: int, bal_acc: float, setting: str = "per_class=5") -> dict:
    return dict(
        dataset="toy", protocol="label_budget", learner=learner, learner_hash="h", setting=setting,
        kind="per_class", value=float(setting.split("=")[1]), seed=seed, split_hash=f"s{seed}", episode=0,
        n_way=2, n_support=10, n_query=4, acc=bal_acc, bal_acc=bal_acc, macro_f1=bal_acc, auroc=bal_acc, ece=0.1,
        seconds=0.1, per_class_acc="{}", confusion=json.dumps({"classes": ["a", "b"], "counts": [[2, 0], [1, 1]]}),
    )  # fmt: skip


def test_summary_statistics_marks_and_plots(tmp_path: Path):
    # finetune 0.6, 0.7, 0.8 (mean 0.7); other = finetune + 0.1 on every seed; second setting only for finetune
    rows = [row("finetune", s, v) for s, v in enumerate([0.6, 0.7, 0.8])]
    rows += [row("other", s, v + 0.1) for s, v in enumerate([0.6, 0.7, 0.8])]
    rows += [row("finetune", s, 0.9, "per_class=20") for s in range(3)]
    summary = write_report(rows, tmp_path, metrics=["bal_acc", "ece"], plot_metrics=["bal_acc"], n_resamples=1000)
    cell = summary["results"]["bal_acc"]["finetune"]["per_class=5"]
    assert cell["mean"] == pytest.approx(0.7) and cell["n"] == 3
    assert cell["ci"] == pytest.approx(4.302653 * 0.1 / 3**0.5, abs=1e-5)  # t_{0.975, 2} * s / sqrt(3)
    versus = summary["results"]["bal_acc"]["other"]["per_class=5"]["vs_reference"]
    assert versus["mean_diff"] == pytest.approx(0.1) and versus["p_wilcoxon"] == pytest.approx(0.25)
    assert "per_class=20" not in summary["results"]["bal_acc"]["other"]
    assert summary["identical_splits"]  # both learners used splits s0, s1, s2
    text = (tmp_path / "summary.md").read_text()
    assert "| other | **0.800 ± 0.248** | - |" in text
    assert "| finetune | 0.700 ± 0.248 | **0.900 ± 0.000** |" in text
    assert json.loads((tmp_path / "summary.json").read_text())["results"]["bal_acc"]["other"]["per_class=5"]["n"] == 3
    assert (tmp_path / "label_efficiency_per_class.png").stat().st_size > 0
    assert (tmp_path / "confusion_per_class_5.png").stat().st_size > 0


def test_different_splits_are_flagged(tmp_path: Path):
    rows = [row("finetune", 0, 0.7), row("other", 0, 0.6) | {"split_hash": "elsewhere"}]
    summary = write_report(rows, tmp_path, metrics=["bal_acc"], plot_metrics=["bal_acc"], n_resamples=100)
    assert not summary["identical_splits"]
    assert "WARNING" in (tmp_path / "summary.md").read_text()

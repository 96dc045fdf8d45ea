"""Learning curves: the inverse power law recovered from synthetic results, labels needed, the back-test arithmetic,
and their place in summary.json, summary.md and learning_curves.png."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from medfew.evaluation.curves import Curve, budget_weights, check_target, fit_curve, learning_curves
from medfew.evaluation.report import write_report

TRUE = Curve(0.9, 0.8, 0.5)
BUDGETS = (5, 10, 20, 40, 80)  # labels per class, two classes


def rows(curve: Curve = TRUE, budgets=BUDGETS, seeds=(0, 1, 2), noise: float = 0.0, learner: str = "learner", last=None) -> list[dict]:
    """Result rows (as strings, as results.csv reads back) scoring ``curve(n)`` plus noise at each budget;
    ``last`` replaces the score of the largest budget."""
    rng, out = np.random.default_rng(0), []
    confusion = json.dumps({"classes": ["a", "b"], "counts": [[1, 0], [0, 1]]})
    for seed in seeds:
        for k in budgets:
            score = float(curve(2 * k) + rng.normal(0, noise)) if last is None or k != budgets[-1] else last
            base = dict(
                dataset="toy", protocol="label_budget", fold="official", data_hash="d", learner=learner, learner_hash="h",
                setting=f"per_class={k}", kind="per_class", value=k, seed=seed, split_hash=f"s{seed}{k}", episode=0, n_way=2,
                n_present=2, n_support=2 * k, n_query=50, acc=score, bal_acc=score, macro_f1=score, auroc=score, ece=0.1,
                seconds=0.1, per_class_acc="{}", confusion=confusion,
            )  # fmt: skip
            out.append({key: str(value) for key, value in base.items()})
    return out


def frame(result_rows: list[dict]) -> pd.DataFrame:
    from medfew.evaluation.report import to_frame

    return to_frame(result_rows)


def test_weights_grow_with_the_budget_as_figueroa_et_al():
    assert budget_weights(np.array([40, 10, 20, 10, 40])).tolist() == [1.0, 1 / 3, 2 / 3, 1 / 3, 1.0]


def test_exact_points_give_back_the_parameters():
    n = np.array([10, 20, 40, 80, 160] * 2, dtype=float)
    fitted = fit_curve(n, TRUE(n))
    assert fitted.a == pytest.approx(0.9, abs=1e-4) and fitted.b == pytest.approx(0.8, abs=1e-3) and fitted.c == pytest.approx(0.5, abs=1e-3)


def test_noisy_units_recover_the_curve_within_tolerance():
    curve = learning_curves(frame(rows(noise=0.003)), ["bal_acc"], {})["learner"]["bal_acc"]
    assert curve["params"]["a"] == pytest.approx(0.9, abs=0.03)
    assert curve["params"]["c"] == pytest.approx(0.5, abs=0.15)
    for predicted in curve["predicted"]:  # 2x and 5x the largest budget (160 images)
        assert predicted["n"] == 160 * predicted["times"]
        assert predicted["value"] == pytest.approx(float(TRUE(predicted["n"])), abs=0.01)
        assert predicted["low"] <= predicted["value"] <= predicted["high"]


def test_labels_needed_solve_the_curve_and_say_when_out_of_reach():
    assert TRUE.labels_for(0.85) == pytest.approx(256)  # (0.8 / 0.05)^2
    assert TRUE.labels_for(0.95) == math.inf  # above the plateau
    curves = learning_curves(frame(rows()), ["bal_acc"], {"bal_acc": 0.85})["learner"]["bal_acc"]
    assert abs(curves["labels_needed"]["n"] - 256) <= 1 and curves["labels_needed"]["reason"] == ""  # the fit's own tolerance
    far = learning_curves(frame(rows()), ["bal_acc"], {"bal_acc": 0.89})["learner"]["bal_acc"]["labels_needed"]
    assert far["n"] is None and far["reason"].startswith("not within 10x the data (more than 1600 images)")  # needs 6400


def test_backtest_fits_without_the_largest_budget_and_predicts_it():
    """The four smaller budgets lie exactly on TRUE; the largest is measured 0.05 lower."""
    measured = float(TRUE(160)) - 0.05
    test = learning_curves(frame(rows(last=measured)), ["bal_acc"], {})["learner"]["bal_acc"]["backtest"]
    assert test["setting"] == "per_class=80" and test["n"] == 160
    assert test["predicted"] == pytest.approx(float(TRUE(160)), abs=1e-4)
    assert test["measured"] == pytest.approx(measured)
    assert test["error"] == pytest.approx(test["predicted"] - test["measured"]) == pytest.approx(0.05, abs=1e-4)


def test_what_cannot_be_fitted_is_missing_with_its_reason():
    assert learning_curves(frame(rows(budgets=(5, 10))), ["bal_acc"], {}) == {}  # no curve section for a 2-budget run
    mixed = frame(rows(budgets=(5, 10, 20)) + rows(budgets=(5, 10), learner="short"))
    two = learning_curves(mixed, ["bal_acc", "ece"], {})["short"]
    assert two["bal_acc"]["params"] is None and two["bal_acc"]["reason"] == "2 budgets with a score; a curve needs 3 or more"
    assert two["ece"]["params"] is None and "lower is better" in two["ece"]["reason"]
    three = learning_curves(frame(rows(budgets=(5, 10, 20))), ["bal_acc"], {})["learner"]["bal_acc"]
    assert three["params"] is not None and three["backtest"]["predicted"] is None
    assert three["backtest"]["reason"] == "3 budgets: it needs 4 (3 to fit, 1 to predict)"
    one_seed = learning_curves(frame(rows(seeds=(0,))), ["bal_acc"], {"bal_acc": 0.85})["learner"]["bal_acc"]
    assert one_seed["predicted"][0]["low"] is None and one_seed["curve"]["low"] is None
    assert one_seed["reason"] == "1 unit (fold x seed): no bands or intervals"


def test_a_target_names_a_report_metric_and_a_score():
    assert check_target({"bal_acc": 0.8}, ["bal_acc", "auroc"]) == {"bal_acc": 0.8}
    with pytest.raises(ValueError, match=r"report.target.ece: a target names one of the report metrics where higher is better"):
        check_target({"ece": 0.1}, ["bal_acc", "ece"])
    with pytest.raises(ValueError, match=r"report.target.bal_acc must be a score in \(0, 1\), got 80"):
        check_target({"bal_acc": 80}, ["bal_acc"])


def test_every_label_budget_report_holds_the_curves(tmp_path):
    result_rows = rows(noise=0.003) + rows(Curve(0.7, 0.5, 0.8), noise=0.003, learner="flat")
    summary = write_report(result_rows, tmp_path, metrics=["bal_acc", "ece"], plot_metrics=["bal_acc"], reference=None, n_resamples=200, target={"bal_acc": 0.85})
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert set(saved["learning_curves"]) == {"learner", "flat"} and saved["target"] == {"bal_acc": 0.85}
    assert set(saved["learning_curves"]["learner"]["bal_acc"]) >= {"params", "predicted", "labels_needed", "backtest"}
    assert saved["learning_curves"]["flat"]["bal_acc"]["labels_needed"]["n"] is None  # its plateau is 0.7
    text = (tmp_path / "summary.md").read_text()
    assert "## Learning curves: predictions and labels needed" in text
    assert "| flat | bal_acc |" in text and "bal_acc 0.85: not within 10x the data" in text
    assert (tmp_path / "learning_curves.png").stat().st_size > 10_000
    assert summary["learning_curves"]["learner"]["bal_acc"]["backtest"]["measured"] is not None


def test_episode_reports_have_no_curves(tmp_path):
    episodes = [r | {"kind": "shots", "setting": f"shots={r['value']}"} for r in rows()]
    summary = write_report(episodes, tmp_path, metrics=["bal_acc"], plot_metrics=["bal_acc"], reference=None, n_resamples=200)
    assert summary["learning_curves"] == {} and not (tmp_path / "learning_curves.png").exists()
    assert "Learning curves" not in (tmp_path / "summary.md").read_text()


def test_report_target_is_set_on_the_command_line(compose_root, tmp_path):
    cfg = compose_root("config", tmp_path, ["report.target={bal_acc: 0.8}"])
    assert check_target(cfg.report.target, cfg.report.metrics) == {"bal_acc": 0.8}
    assert compose_root("config", tmp_path, []).report.target is None

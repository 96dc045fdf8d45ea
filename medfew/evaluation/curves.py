"""Learning curves of a label-budget comparison: how a learner's score grows with labelled images.

Each learner with at least ``MIN_BUDGETS`` budgets gets ``metric(n) = a - b * n^(-c)`` fitted to its
per-unit scores (n: the labelled training images of a budget, ``n_support``), by weighted nonlinear
least squares (``scipy.optimize.curve_fit``, bounds 0 <= a <= 1, b >= 0, 0 < c <= 3): the inverse
power law of Figueroa, Zeng-Treitler, Kandula & Ngo, "Predicting sample size required for
classification performance", BMC Medical Informatics and Decision Making 12:8, 2012,
https://doi.org/10.1186/1472-6947-12-8, who weight the j-th of m budgets (smallest first) by j / m.
Small budgets scatter most and say least about the plateau that predictions extrapolate to, so
larger budgets count more; they found this beat unweighted fits on 568 curves.

Bands are percentile intervals over bootstrap resamples of the units (folds x seeds), each refitted.
A prediction is made at 2x and 5x the largest budget; the labels needed for a target solve
``a - b * n^(-c) = target`` and are not claimed beyond ``HORIZON`` times the largest budget. The
back-test refits without the largest budget and predicts it. Whatever cannot be computed is None
with a ``reason``, never a number.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import OptimizeWarning, curve_fit

from medfew.evaluation.metrics import LOWER_IS_BETTER, METRICS
from medfew.evaluation.stats import bootstrap_ci

MODEL = "a - b * n^(-c)"
BUDGET_KINDS = ("per_class", "fraction")
MIN_BUDGETS = 3  # three parameters
HORIZON = 10  # labels needed are claimed up to this multiple of the largest budget
MULTIPLES = (2, 5)  # predictions at these multiples of the largest budget
GRID_POINTS = 40  # budgets at which summary.json holds the fitted curve and its band
MAX_RESAMPLES = 500  # bootstrap refits per curve (fewer when the report asks for fewer resamples)
BOUNDS = ([0.0, 0.0, 1e-3], [1.0, np.inf, 3.0])
STARTS = (0.2, 0.5, 1.0)  # initial exponents c tried; the best weighted fit wins


class CurveError(ValueError):
    """A curve that cannot be fitted; the message says why."""


@dataclass(frozen=True)
class Curve:
    """``a - b * n^(-c)``: ``a`` the plateau, ``b`` the gap to it at n = 1, ``c`` how fast it closes."""

    a: float
    b: float
    c: float

    def __call__(self, n: np.ndarray | float) -> np.ndarray:
        return self.a - self.b * np.power(np.asarray(n, dtype=float), -self.c)

    def labels_for(self, target: float) -> float:
        """The n where the curve reaches ``target`` (inf when its plateau ``a`` is not above it)."""
        if self.b == 0:
            return 1.0 if self.a >= target else math.inf
        if self.a <= target:
            return math.inf
        return (self.b / (self.a - target)) ** (1 / self.c)


def power_law(n: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    return a - b * np.power(n, -c)


def budget_weights(n: np.ndarray) -> np.ndarray:
    """Figueroa et al.'s weights: a point of the j-th smallest of m distinct budgets weighs j / m."""
    budgets = np.unique(n)
    return (np.searchsorted(budgets, n) + 1) / len(budgets)


def fit_curve(n: Sequence[float], y: Sequence[float], start: Curve | None = None) -> Curve:
    """The weighted least-squares fit of ``a - b * n^(-c)`` to points (n, y) on at least ``MIN_BUDGETS`` budgets.

    ``start``: one initial guess (a bootstrap refit starts from the full fit); else the best of ``STARTS``.
    """
    n, y = np.asarray(n, dtype=float), np.asarray(y, dtype=float)
    if len(np.unique(n)) < MIN_BUDGETS:
        raise CurveError(f"{len(np.unique(n))} budgets; a curve of 3 parameters needs {MIN_BUDGETS} or more")
    sigma = 1 / np.sqrt(budget_weights(n))
    guesses = [start] if start is not None else [initial_guess(n, y, c) for c in STARTS]
    best, best_cost = None, math.inf
    for guess in guesses:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", OptimizeWarning)  # no covariance with as many points as parameters
                params, _ = curve_fit(power_law, n, y, p0=clip(guess), sigma=sigma, bounds=BOUNDS, maxfev=5000)
        except (RuntimeError, ValueError):
            continue
        cost = float(np.sum(((power_law(n, *params) - y) / sigma) ** 2))
        if cost < best_cost:
            best, best_cost = Curve(*map(float, params)), cost
    if best is None:
        raise CurveError("the least-squares fit did not converge")
    return best


def initial_guess(n: np.ndarray, y: np.ndarray, c: float) -> Curve:
    """A plateau a little above the best score, and the b that fits the rest on average for exponent ``c``."""
    a = min(1.0, float(y.max()) + 0.02)
    b = max(float(np.mean((a - y) * n**c)), 0.0)
    return Curve(a, b, c)


def clip(guess: Curve) -> list[float]:
    """``guess`` inside the bounds (curve_fit refuses a start outside them)."""
    low, high = BOUNDS
    return [float(np.clip(value, lo + 1e-9, hi - 1e-9)) for value, lo, hi in zip((guess.a, guess.b, guess.c), low, high)]


def check_target(target: Mapping[str, Any] | None, metrics: Sequence[str]) -> dict[str, float]:
    """``report.target`` as {metric: score}; each metric one of ``metrics`` (higher is better), each score in (0, 1)."""
    checked = {}
    for metric, score in dict(target or {}).items():
        if metric not in metrics or metric in LOWER_IS_BETTER:
            usable = [m for m in metrics if m not in LOWER_IS_BETTER]
            raise ValueError(f"report.target.{metric}: a target names one of the report metrics where higher is better: {usable}")
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0 < score < 1:
            raise ValueError(f"report.target.{metric} must be a score in (0, 1), got {score!r}")
        checked[metric] = float(score)
    return checked


def budget_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of label-budget settings (labels per class, fractions of the labels)."""
    return frame[frame["kind"].isin(BUDGET_KINDS)]


def unit_scores(rows: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One learner's score per unit (fold, seed) and budget: columns unit, setting, n, y (NaN where undefined)."""
    grouped = rows.groupby(["fold", "seed", "setting"], sort=False)
    scores = grouped.agg(n=("n_support", "mean"), y=(metric, "mean"), nan=(metric, lambda v: v.isna().any())).reset_index()
    scores.loc[scores["nan"], "y"] = np.nan
    scores["unit"] = list(zip(scores["fold"], scores["seed"]))
    return scores[["unit", "setting", "n", "y"]]


def bootstrap_curves(scores: pd.DataFrame, curve: Curve, n_resamples: int, seed: int = 0) -> tuple[list[Curve], int]:
    """Refits on ``n_resamples`` resamples of the units (with replacement; a resample drawn twice is fitted
    once); returns the curves and how many resamples failed to fit (too few budgets, no convergence)."""
    units = list(dict.fromkeys(scores["unit"]))
    by_unit = {unit: group for unit, group in scores.groupby("unit", sort=False)}
    rng, fitted, curves, failed = np.random.default_rng(seed), {}, [], 0
    for _ in range(n_resamples):
        key = tuple(sorted(rng.integers(len(units), size=len(units)).tolist()))
        if key not in fitted:
            sample = pd.concat([by_unit[units[i]] for i in key])
            try:
                fitted[key] = fit_curve(sample["n"], sample["y"], start=curve)
            except CurveError:
                fitted[key] = None
        if fitted[key] is None:
            failed += 1
        else:
            curves.append(fitted[key])
    return curves, failed


def interval(values: Sequence[float], confidence: float) -> tuple[float, float]:
    """Percentile interval of ``values`` without interpolation (values may be inf)."""
    tail = (1 - confidence) / 2
    low, high = np.quantile(np.asarray(values, dtype=float), [tail, 1 - tail], method="inverted_cdf")
    return float(low), float(high)


def band(curves: Sequence[Curve], n: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray] | None:
    """Pointwise percentile band of ``curves`` at ``n``; None with fewer than two curves."""
    if len(curves) < 2:
        return None
    values = np.stack([curve(n) for curve in curves])
    tail = (1 - confidence) / 2
    return tuple(np.quantile(values, [tail, 1 - tail], axis=0, method="inverted_cdf"))


def estimate(value: float, spread: Sequence[float], confidence: float) -> dict[str, float | None]:
    low, high = interval(spread, confidence) if len(spread) >= 2 else (None, None)
    return {"value": value, "low": low, "high": high}


def predictions(curve: Curve, curves: Sequence[Curve], largest: float, confidence: float) -> list[dict[str, Any]]:
    """The fitted score at ``MULTIPLES`` of the largest budget, with bootstrap intervals."""
    out = []
    for times in MULTIPLES:
        n = times * largest
        out.append({"times": times, "n": round(n)} | estimate(float(curve(n)), [float(c(n)) for c in curves], confidence))
    return out


def whole(n: float) -> int:
    """Images to reach a score: n rounded up, float noise aside (256.00000001 is 256)."""
    return math.ceil(n * (1 - 1e-9))


def labels_needed(curve: Curve, curves: Sequence[Curve], target: float, largest: float, confidence: float) -> dict[str, Any]:
    """Labelled images to reach ``target`` and its interval; None beyond ``HORIZON`` x the largest budget, with why."""
    limit = HORIZON * largest
    n = curve.labels_for(target)
    found = {"target": target, "n": None, "low": None, "high": None, "reason": ""}
    if len(curves) >= 2:
        low, high = interval([c.labels_for(target) for c in curves], confidence)
        found["low"] = whole(low) if low <= limit else None
        found["high"] = whole(high) if high <= limit else None
    if n > limit:
        plateau = f"; the curve levels off at {curve.a:.3f}" if curve.a <= target else ""
        found["reason"] = f"not within {HORIZON}x the data (more than {math.ceil(limit)} images){plateau}"
        return found
    found["n"] = whole(n)
    if found["high"] is None and len(curves) >= 2:
        found["reason"] = f"upper bound not within {HORIZON}x the data"
    return found


def backtest(scores: pd.DataFrame) -> dict[str, Any]:
    """Fit without the largest budget and predict it: predicted and measured mean score there."""
    means = scores.groupby("setting", sort=False)["n"].mean().sort_values()
    held_out = means.index[-1]
    found = {"setting": held_out, "n": round(float(means.iloc[-1])), "predicted": None, "measured": None, "error": None, "reason": ""}
    kept = scores[scores["setting"] != held_out]
    if kept["setting"].nunique() < MIN_BUDGETS:
        found["reason"] = f"{len(means)} budgets: it needs {MIN_BUDGETS + 1} ({MIN_BUDGETS} to fit, 1 to predict)"
        return found
    measured = scores[scores["setting"] == held_out]
    found["measured"] = float(measured["y"].mean())
    try:
        curve = fit_curve(kept["n"], kept["y"])
    except CurveError as error:
        found["reason"] = str(error)
        return found
    found["predicted"] = float(curve(measured["n"].mean()))
    found["error"] = found["predicted"] - found["measured"]
    return found


def measured_budgets(scores: pd.DataFrame, confidence: float, n_resamples: int) -> list[dict[str, Any]]:
    """Per budget (smallest first): setting, n, and the mean score over units with its bootstrap interval."""
    budgets = []
    for setting, own in sorted(scores.groupby("setting", sort=False), key=lambda item: item[1]["n"].mean()):
        found = bootstrap_ci(own["y"].to_numpy(), confidence, n_resamples)
        budgets.append({"setting": setting, "n": float(own["n"].mean()), "mean": found.mean, "low": found.low, "high": found.high, "units": found.n})
    return budgets


def drawn_curve(curve: Curve, curves: Sequence[Curve], smallest: float, largest: float, confidence: float) -> dict[str, Any]:
    """The fit and its band on ``GRID_POINTS`` budgets from the smallest to ``HORIZON`` x the largest (what the plot draws)."""
    n = np.geomspace(smallest, HORIZON * largest, GRID_POINTS)
    spread = band(curves, n, confidence)
    low, high = (None, None) if spread is None else (spread[0].tolist(), spread[1].tolist())
    return {"n": n.tolist(), "fit": curve(n).tolist(), "low": low, "high": high}


def missing(reason: str) -> dict[str, Any]:
    return {"params": None, "predicted": None, "labels_needed": None, "backtest": None, "reason": reason}


def learner_curve(
    rows: pd.DataFrame, metric: str, target: float | None, confidence: float, n_resamples: int
) -> dict[str, Any]:
    """One learner's curve for ``metric``: params, predictions, labels needed, back-test (see the module)."""
    if metric in LOWER_IS_BETTER:
        return missing(f"{metric}: lower is better; the curve models a score that rises with labels")
    scores = unit_scores(rows, metric)
    undefined = int(scores["y"].isna().sum())
    scores = scores.dropna(subset=["y"])
    budgets = scores["setting"].nunique()
    if budgets < MIN_BUDGETS:
        return missing(f"{budgets} budgets with a score; a curve needs {MIN_BUDGETS} or more") | {"undefined_points": undefined}
    try:
        curve = fit_curve(scores["n"], scores["y"])
    except CurveError as error:
        return missing(str(error)) | {"undefined_points": undefined}
    units = scores["unit"].nunique()
    curves, failed = bootstrap_curves(scores, curve, min(n_resamples, MAX_RESAMPLES)) if units >= 2 else ([], 0)
    largest = float(scores["n"].max())
    return {
        "params": {"a": curve.a, "b": curve.b, "c": curve.c},
        "budgets": measured_budgets(scores, confidence, n_resamples),
        "predicted": predictions(curve, curves, largest, confidence),
        "labels_needed": None if target is None else labels_needed(curve, curves, target, largest, confidence),
        "backtest": backtest(scores),
        "units": units,
        "curve": drawn_curve(curve, curves, float(scores["n"].min()), largest, confidence),
        "bootstrap": {"resamples": len(curves) + failed, "failed": failed},
        "undefined_points": undefined,
        "reason": "" if units >= 2 else "1 unit (fold x seed): no bands or intervals",
    }


def learning_curves(
    frame: pd.DataFrame, metrics: Sequence[str], target: Mapping[str, float], confidence: float = 0.95, n_resamples: int = 10_000
) -> dict[str, dict[str, Any]]:
    """``learning_curves[learner][metric]`` of a report's rows (those of label-budget settings); {} when the run
    has fewer than ``MIN_BUDGETS`` budgets (a learner missing some of them gets its reason)."""
    rows = budget_rows(frame)
    if rows.empty or rows["setting"].nunique() < MIN_BUDGETS:
        return {}
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; each must be one of {METRICS}")
    return {
        learner: {metric: learner_curve(own, metric, target.get(metric), confidence, n_resamples) for metric in metrics}
        for learner, own in rows.groupby("learner", sort=False)
    }

"""summary.md, summary.json and the plots (``medfew.evaluation.plots``) from the rows of results.csv.

Each (learner, setting) is summarised over its units: episodes (scores averaged over seeds)
when the setting has several, else (fold, seed) pairs, so a k-fold run pools its folds into
one mean and interval per learner and setting. Rows of one fold must share one data
fingerprint (``data_hash``), and rows of one (fold, learner, setting, seed) one split hash (the same
episodes or labelled images). Paired comparisons with the reference learner use the units both
learners were scored on; their p-values are Holm-corrected within each metric's table.
``summary_table`` gives the same numbers as one long frame (for W&B). Every file is written
atomically (``medfew.files``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medfew.evaluation.curves import MODEL, check_target, learning_curves
from medfew.evaluation.metrics import LOWER_IS_BETTER, METRICS, why_undefined
from medfew.evaluation.plan import describe_scaling
from medfew.evaluation.plots import SMOKE, drawn_names, fonts_for, plot_confusions, plot_label_efficiency, plot_learning_curves
from medfew.evaluation.robustness_report import plot_robustness, robustness_lines, robustness_summary, split_conditions
from medfew.evaluation.stats import bootstrap_ci, holm, paired_comparison
from medfew.files import write_json, write_text

LABELLED = "labelled training images"  # the summary header's key for the counts behind each setting
CHANCE_TOLERANCE = 1e-6  # a mean this close to its chance level counts as at chance

NUMERIC = ("value", "seed", "episode", "n_way", "n_present", "n_support", *METRICS)
REQUIRED = ("dataset", "protocol", "learner", "setting", "kind", "fold", "data_hash", "split_hash", "confusion", *NUMERIC)
#: paired-comparison keys, and their columns in ``summary_table``
VERSUS = {
    "mean_diff": "mean_diff", "low": "diff_low", "high": "diff_high", "n": "diff_n", "p_bootstrap": "p_bootstrap",
    "p_wilcoxon": "p_wilcoxon", "p_bootstrap_holm": "p_bootstrap_holm", "p_wilcoxon_holm": "p_wilcoxon_holm",
}  # fmt: skip


def number(text: Any, column: str) -> float:
    """A CSV cell as a float: "" -> NaN; "nan", "inf", "-inf" as Python reads them (on any pandas)."""
    if text is None or text == "":
        return float("nan")
    try:
        return float(text)
    except (TypeError, ValueError):
        raise ValueError(f"column {column}: cannot read {text!r} as a number") from None


def to_frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Result rows (strings as the csv module reads them, or numbers) as a frame with numeric scores."""
    frame = pd.DataFrame(list(rows))
    missing = [c for c in REQUIRED if c not in frame]
    if missing:
        raise ValueError(f"result rows lack the columns {missing}")
    for column in NUMERIC:
        frame[column] = np.array([number(v, column) for v in frame[column]], dtype=float)
    for column in ("fold", "data_hash", "split_hash"):
        frame[column] = frame[column].astype(str)
    absent = frame[~(frame["n_present"] >= 1)]
    if len(absent):
        row = absent.iloc[0]
        raise ValueError(f"n_present = {row['n_present']} (classes present in the evaluated labels) must be >= 1 ({row['learner']}, {row['setting']})")
    for metric in METRICS:
        bad = frame[~(frame[metric].between(0, 1 + 1e-6) | frame[metric].isna())]
        if len(bad):
            row = bad.iloc[0]
            raise ValueError(f"{metric} = {row[metric]} outside [0, 1] ({row['learner']}, {row['setting']}, seed {row['seed']:g})")
    return frame


def check_data(frame: pd.DataFrame) -> dict[str, list[str]]:
    """The data fingerprints of each fold; raise when one learner's rows of one fold name different data.

    Different learners may differ (a sweep over ``data.image_size`` labels its learners apart).
    """
    for (fold, learner), rows in frame.groupby(["fold", "learner"], sort=False):
        found = [f"{h} ({', '.join(dict.fromkeys(g.setting))})" for h, g in rows.groupby("data_hash")]
        if len(found) > 1:
            raise ValueError(
                f"{learner}, fold {fold!r}: rows of different data, which cannot be pooled: data_hash {' vs '.join(found)}"
            )
    return {str(fold): sorted(set(rows["data_hash"])) for fold, rows in frame.groupby("fold", sort=False)}


def check_splits(frame: pd.DataFrame) -> bool:
    """Whether every learner was scored on the same tasks (one split hash per fold, setting and seed);
    raise when one learner's rows of one fold, setting and seed name different tasks (episode sets or
    labelled subsets), which cannot be pooled into one estimate."""
    block = ["fold", "setting", "seed"]
    for (fold, learner, setting, seed), rows in frame.groupby(["fold", "learner", "setting", "seed"], sort=False):
        found = sorted(set(rows["split_hash"]))
        if len(found) > 1:
            raise ValueError(
                f"{learner}, fold {fold!r}, {setting}, seed {seed:g}: rows of different tasks (episodes or labelled images), "
                f"which cannot be pooled: split_hash {' vs '.join(found)}"
            )
    return bool(frame.groupby(block, sort=False)["split_hash"].nunique().eq(1).all())


def unit_columns(rows: pd.DataFrame) -> list[str]:
    """The unit of a setting's rows: (fold, episode) when it has several episodes, else (fold, seed)."""
    return ["fold", "episode"] if rows["episode"].nunique() > 1 else ["fold", "seed"]


def units(rows: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """Mean scores per learner and unit (index: learner, fold, episode or seed); NaN where any of a unit's rows is NaN."""
    grouped = rows.groupby(["learner", *unit_columns(rows)], sort=False)[list(metrics)]
    return grouped.mean().where(grouped.count().eq(grouped.size(), axis=0))


def chance(rows: pd.DataFrame) -> dict[str, float | None]:
    """What a trivial classifier scores on a setting's rows (mean over rows); ECE has no such level.

    Accuracy: the majority-class share. Balanced accuracy and macro-F1 (over the classes present):
    1 / classes present, what predicting one class, or guessing uniformly, reaches. AUROC: 0.5.
    """
    counts = [np.array(json.loads(c)["counts"]) for c in rows["confusion"]]
    majority = float(np.mean([m.sum(axis=1).max() / max(m.sum(), 1) for m in counts]))
    uniform = float((1 / rows["n_present"]).mean())
    return {"acc": majority, "bal_acc": uniform, "macro_f1": uniform, "auroc": 0.5, "ece": None}


def span(values: Sequence[float], form: str = "{}") -> str:
    """'3' when every value is 3, else 'min-max', each value written by ``form``."""
    low, high = form.format(min(values)), form.format(max(values))
    return low if low == high else f"{low}-{high}"


def summarize(
    frame: pd.DataFrame,
    metrics: Sequence[str],
    reference: str | None,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    header: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Mean and interval per metric, learner and setting, best learners, and Holm-corrected paired tests with ``reference``."""
    data_hashes = check_data(frame)
    identical_splits = check_splits(frame)
    settings = frame[["setting", "kind", "value"]].drop_duplicates("setting")
    kinds = {kind: i for i, kind in enumerate(dict.fromkeys(settings["kind"]))}  # protocol order
    settings = settings.sort_values(["kind", "value"], key=lambda c: c.map(kinds) if c.name == "kind" else c).to_dict("records")
    for s in settings:
        rows = frame[frame.setting == s["setting"]]
        s |= {"unit": " x ".join(unit_columns(rows)), "chance": chance(rows), "labelled": span(rows["n_support"].astype(int))}
    learners = list(dict.fromkeys(frame["learner"]))
    ran = reference if reference in learners else None
    table: dict[str, dict[str, dict[str, Any]]] = {metric: {learner: {} for learner in learners} for metric in metrics}
    for s in settings:
        fill_setting(table, frame[frame.setting == s["setting"]], s, ran, confidence, n_resamples)
    for by_learner in table.values():
        correct(by_learner)
    return {
        "header": dict(header or {}),
        "dataset": sorted(set(frame["dataset"])),
        "protocol": sorted(set(frame["protocol"])),
        "metrics": list(metrics),
        "reference": ran,
        "requested_reference": reference,
        "confidence": confidence,
        "interval": f"percentile bootstrap of the mean (scipy.stats.bootstrap, {n_resamples} resamples)",
        "correction": "Holm, within each metric's table",
        "learners": learners,
        "settings": settings,
        "folds": list(data_hashes),
        "data_hashes": data_hashes,
        "identical_splits": identical_splits,
        "split_hashes": {s["setting"]: sorted(set(frame[frame.setting == s["setting"]]["split_hash"])) for s in settings},
        "results": table,
    }


def fill_setting(
    table: dict, rows: pd.DataFrame, setting: Mapping[str, Any], reference: str | None, confidence: float, n_resamples: int
) -> None:
    """One setting's cells in every metric's table: estimates, paired tests with ``reference``, best learners."""
    scores = units(rows, list(table))
    learners = list(dict.fromkeys(scores.index.get_level_values("learner")))
    skill = rows.groupby("learner")["bal_acc"].mean()
    for metric, by_learner in table.items():
        values = {learner: scores[metric].xs(learner, level="learner") for learner in learners}
        for learner, own in values.items():
            by_learner[learner][setting["setting"]] = cell(own, rows[rows.learner == learner], metric, confidence, n_resamples)
            if reference in values and learner != reference:
                common = own.index.intersection(values[reference].index)
                versus = paired_comparison(own[common].to_numpy(), values[reference][common].to_numpy(), n_resamples, confidence)
                by_learner[learner][setting["setting"]]["vs_reference"] = asdict(versus)
        mark_best(by_learner, metric, setting, skill)


def cell(scores: pd.Series, rows: pd.DataFrame, metric: str, confidence: float, n_resamples: int) -> dict[str, Any]:
    """Mean, interval and n of one learner's unit ``scores``; undefined units counted, with the reasons found in its ``rows``."""
    estimate = bootstrap_ci(scores.to_numpy(), confidence, n_resamples)
    missing = int(scores.isna().sum())
    reasons = sorted({why_undefined(metric, n) for n in rows.loc[rows[metric].isna(), "n_present"]}) if missing else []
    return asdict(estimate) | {"missing": missing, "missing_reason": "; ".join(reasons), "best": False, "vs_reference": None}


def mark_best(table: dict, metric: str, setting: Mapping[str, Any], skill: pd.Series) -> None:
    """Mark the best mean of a column among learners above chance: ``skill`` (mean balanced accuracy) and the metric above their chance levels."""
    level, uniform = setting["chance"][metric], setting["chance"]["bal_acc"]
    means = {
        learner: cells[setting["setting"]]["mean"]
        for learner, cells in table.items()
        if setting["setting"] in cells and above(skill.get(learner, np.nan), uniform)
    }
    means = {lr: m for lr, m in means.items() if not np.isnan(m) and (level is None or above(m, level))}
    if means and sum(setting["setting"] in cells for cells in table.values()) > 1:  # a lone learner is no "best"
        target = (min if metric in LOWER_IS_BETTER else max)(means.values())
        for learner, m in means.items():
            table[learner][setting["setting"]]["best"] = m == target


def above(value: float, level: float) -> bool:
    """Whether ``value`` is above ``level`` by more than float32 rounding (0.5 can be scored as 0.5000000059604645)."""
    return value > level + CHANCE_TOLERANCE


def correct(table: dict) -> None:
    """Add Holm-adjusted p-values over all paired comparisons of one metric's table."""
    comparisons = [c["vs_reference"] for cells in table.values() for c in cells.values() if c["vs_reference"]]
    for test in ("p_bootstrap", "p_wilcoxon"):
        for versus, adjusted in zip(comparisons, holm([v[test] for v in comparisons])):
            versus[f"{test}_holm"] = float(adjusted)


def summary_table(summary: Mapping[str, Any]) -> pd.DataFrame:
    """Long table of numbers (one row per metric, learner and setting) for W&B; NaN where undefined."""
    settings = {s["setting"]: s for s in summary["settings"]}
    records = []
    for metric, by_learner in summary["results"].items():
        for learner, cells in by_learner.items():
            for name, c in cells.items():
                versus = c["vs_reference"] or {}
                records.append(
                    dict(metric=metric, learner=learner, setting=name, kind=settings[name]["kind"], value=settings[name]["value"])
                    | {k: c[k] for k in ("mean", "low", "high", "n", "missing", "best")}
                    | {column: versus.get(key, np.nan) for key, column in VERSUS.items()}
                    | {"reason": "; ".join(filter(None, (c["reason"], c["missing_reason"], versus.get("reason"))))}
                )
    return pd.DataFrame.from_records(records).astype({k: float for k in ("mean", "low", "high", *VERSUS.values())})


def format_cell(cell: Mapping[str, Any] | None) -> str:
    """"mean [low, high], n=…"; "n/a (reason)" without a value; the reason without an interval."""
    if cell is None:
        return "not run"
    if cell["mean"] is None or np.isnan(cell["mean"]):
        return f"n/a ({cell['missing_reason'] or cell['reason']})"
    if cell["n"] < 2:
        text = f"{cell['mean']:.3f} ({cell['reason']})"
    else:
        text = f"{cell['mean']:.3f} [{cell['low']:.3f}, {cell['high']:.3f}], n={cell['n']}"
    return text + (f" +{cell['missing']} n/a" if cell["missing"] else "")


def format_p(p: float, n_resamples: int) -> str:
    """A bootstrap p of 0 means "below the resolution 1 / n_resamples"."""
    return f"< {1 / n_resamples:.0e}" if p == 0 else f"{p:.3g}"


def header_lines(summary: Mapping[str, Any]) -> list[str]:
    """The smoke-run warning and the run context (``header``) as markdown lines."""
    header = summary["header"]
    lines = [f"> **{SMOKE}**", ""] if header.get("smoke") else []
    lines += [f"- {key}: {shown(value)}" for key, value in header.items()]
    return lines + ([""] if header else [])


def shown(value: Any) -> str:
    """A header value as text: lists joined by commas (an item holding a comma quoted: class
    "normal, benign"), mappings as "key: value" pairs, booleans as JSON."""
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {shown(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(json.dumps(v) if isinstance(v, str) and "," in v else shown(v) for v in value)
    return json.dumps(value) if isinstance(value, bool) else str(value)


def legend_lines(summary: Mapping[str, Any], alpha: float) -> list[str]:
    """How to read the tables: cells, units, bold, † and the data behind them."""
    reference, requested = summary["reference"], summary["requested_reference"]
    by_unit: dict[str, list[str]] = {}
    for s in summary["settings"]:
        by_unit.setdefault(s["unit"], []).append(s["setting"])
    units = by_unit.popitem()[0] if len(by_unit) == 1 else "; ".join(f"{u} ({', '.join(names)})" for u, names in by_unit.items())
    folds = ", ".join(f"{fold} (data {' / '.join(h)})" for fold, h in summary["data_hashes"].items())
    lines = [
        f"Cells: mean [{summary['confidence']:.0%} CI] over n units; interval: {summary['interval']}, none where n < 2, "
        "and narrow for small n (it never reaches past the observed values). "
        "Balanced accuracy, macro-F1 and AUROC average over the classes present in the evaluated labels.",
        f"Units (what n counts): {units}{'; an episode scores its mean over seeds' if 'episode' in units else ''}. Folds: {folds}.",
        "**Bold**: best mean in the column among learners above chance: balanced accuracy above 1 / classes present, and the "
        "metric above its own chance level (accuracy: the majority-class share; macro-F1: 1 / classes present; AUROC: 0.5; ECE: none).",
    ]
    if tested(summary):
        lines.append(f"†: differs from `{reference}` (Wilcoxon signed-rank, p < {alpha} after Holm correction within the table).")
    elif reference:
        alone = len(summary["learners"]) == 1
        lines.append(f"No paired tests: `{reference}` is the only learner here." if alone else f"No paired tests: no learner has 2 or more units paired with `{reference}`.")
    else:
        lines.append(f"No paired tests: the reference `{requested}` is none of the learners here." if requested else "No paired tests: no reference learner.")
    if not summary["identical_splits"]:
        lines += ["", "WARNING: learners were scored on different episodes / label subsets (split hashes differ)."]
    if any(len(h) > 1 for h in summary["data_hashes"].values()):
        lines += ["", "WARNING: learners were scored on different data (a fold has several fingerprints); paired tests pair their units."]
    return lines


def tested(summary: Mapping[str, Any]) -> bool:
    """Whether some paired comparison in the tables has a p-value."""
    comparisons = [c["vs_reference"] for by_learner in summary["results"].values() for cells in by_learner.values() for c in cells.values()]
    return any(versus and not pd.isna(versus["p_wilcoxon_holm"]) for versus in comparisons)


def metric_lines(summary: Mapping[str, Any], metric: str, alpha: float) -> list[str]:
    """The learner x setting table of one metric, with notes on undefined values."""
    settings = [s["setting"] for s in summary["settings"]]
    arrow = "lower is better" if metric in LOWER_IS_BETTER else "higher is better"
    lines = ["", f"## {metric} ({arrow})", "", "| learner | " + " | ".join(settings) + " |", "|---" * (len(settings) + 1) + "|"]
    notes = []
    for learner, cells in summary["results"][metric].items():
        row = []
        for s in settings:
            c = cells.get(s)
            text = f"**{format_cell(c)}**" if c and c["best"] else format_cell(c)
            versus = c and c["vs_reference"]
            row.append(text + (" †" if versus and versus["p_wilcoxon_holm"] < alpha else ""))
            if c and c["missing"] and c["n"]:
                notes.append(f"- {learner}, {s}: {c['missing']} of {c['missing'] + c['n']} units n/a ({c['missing_reason']})")
        lines.append(f"| {learner} | " + " | ".join(row) + " |")
    return lines + ([""] + notes if notes else [])


def paired_lines(summary: Mapping[str, Any], n_resamples: int) -> list[str]:
    """The paired comparisons of the primary metric with the reference learner."""
    reference, primary = summary["reference"], summary["metrics"][0]
    cells = [(lr, s, c) for lr, by_setting in summary["results"][primary].items() for s, c in by_setting.items()]
    paired = [(lr, s, c["vs_reference"]) for lr, s, c in cells if c["vs_reference"]]
    if not paired:
        return []
    lines = [
        "",
        f"## Paired comparison with `{reference}` ({primary}, learner - {reference})",
        "",
        "Units are paired by (fold, episode) or (fold, seed); with n units the two-sided Wilcoxon p is at least 2 / 2^n, and a "
        "bootstrap over fewer than about 10 units is optimistic: add seeds or episodes before claiming a difference. "
        "Holm: corrected over the comparisons of this table.",
        "",
        f"| learner | setting | mean diff | {summary['confidence']:.0%} CI (paired bootstrap) | p (bootstrap) | p (Wilcoxon) "
        "| p (Wilcoxon, Holm) | n |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for lr, s, v in paired:
        if v["reason"]:
            diff = "–" if np.isnan(v["mean_diff"]) else f"{v['mean_diff']:+.3f}"
            lines.append(f"| {lr} | {s} | {diff} | – ({v['reason']}) | – | – | – | {v['n']} |")
        else:
            interval, p_boot = f"[{v['low']:+.3f}, {v['high']:+.3f}]", format_p(v["p_bootstrap"], n_resamples)
            lines.append(f"| {lr} | {s} | {v['mean_diff']:+.3f} | {interval} | {p_boot} | {v['p_wilcoxon']:.3g} | {v['p_wilcoxon_holm']:.3g} | {v['n']} |")
    return lines


def curve_metrics(summary: Mapping[str, Any], plot_metrics: Sequence[str]) -> list[str]:
    """The metrics whose learning curves are drawn: the plotted ones and those with a target, in report order."""
    return [m for m in summary["metrics"] if (m in plot_metrics or m in summary["target"]) and m not in LOWER_IS_BETTER]


def curve_lines(summary: Mapping[str, Any]) -> list[str]:
    """The learning-curve table of the primary metric and of every metric with a target (none without budgets)."""
    curves = summary.get("learning_curves") or {}
    if not curves:
        return []
    primary, targets = summary["metrics"][0], summary["target"]
    shown = [m for m in summary["metrics"] if m == primary or m in targets]
    lines = [
        "",
        "## Learning curves: predictions and labels needed",
        "",
        f"Per learner, metric(n) = {MODEL} fitted to the units' scores, n = labelled training images, by weighted "
        "least squares (Figueroa et al. 2012: the j-th of m budgets weighs j / m). Intervals: "
        f"{summary['confidence']:.0%} percentile bootstrap over the units, each resample refitted; with few units they "
        "are narrow and rough. Back-test: refitted without the largest budget, predicting it. Plot: learning_curves.png.",
        *mixed_sampling(summary),
        "",
        "| learner | metric | a, b, c | at 2x the largest budget | at 5x | labels needed | back-test: predicted / measured |",
        "|---|---|---|---|---|---|---|",
    ]
    for learner, by_metric in curves.items():
        for metric in shown:
            lines.append(f"| {learner} | {metric} | " + " | ".join(curve_cells(by_metric[metric], metric)) + " |")
    return lines


def mixed_sampling(summary: Mapping[str, Any]) -> list[str]:
    """A caution when the curves pool labels per class (balanced draws) and fractions (the data's class balance)."""
    kinds = {s["kind"] for s in summary["settings"]}
    if not {"per_class", "fraction"} <= kinds:
        return []
    return [
        "",
        "Caution: the budgets mix labels per class (equal counts per class) and fractions (the data's own class balance). "
        "Where the classes are imbalanced, a curve through both assumes one way of drawing labels, and a learner whose "
        "score depends on the balance (balanced accuracy of an unweighted classifier) can leave it: the back-test then shows it.",
    ]


def curve_cells(curve: Mapping[str, Any], metric: str) -> list[str]:
    """The cells of one learner's curve after its name and metric; a curve not fitted says why."""
    if curve["params"] is None:
        return [f"n/a ({curve['reason']})", "–", "–", "–", "–"]
    params = ", ".join(f"{curve['params'][k]:.3g}" for k in "abc")
    at = [f"{estimated(p['value'], p['low'], p['high'])} at {p['n']}" for p in curve["predicted"]]
    return [params, *at, needed_cell(curve["labels_needed"], metric), backtest_cell(curve["backtest"])]


def estimated(value: float, low: float | None, high: float | None, form: str = "{:.3f}") -> str:
    """'0.812 [0.800, 0.830]', or the value alone without an interval."""
    if low is None or high is None:
        return form.format(value)
    return f"{form.format(value)} [{form.format(low)}, {form.format(high)}]"


def needed_cell(needed: Mapping[str, Any] | None, metric: str) -> str:
    if needed is None:
        return "– (no report.target)"
    reached = f"{metric} {needed['target']:g}: "
    if needed["n"] is None:
        return reached + needed["reason"]
    low, high = (needed[k] if needed[k] is not None else "–" for k in ("low", "high"))
    interval = f" [{low}, {high}]" if needed["low"] is not None or needed["high"] is not None else ""
    return reached + f"{needed['n']} images{interval}" + (f" ({needed['reason']})" if needed["reason"] else "")


def backtest_cell(test: Mapping[str, Any]) -> str:
    if test["predicted"] is None:
        return f"– ({test['reason']})"
    return f"{test['predicted']:.3f} / {test['measured']:.3f} ({test['error']:+.3f}) at {test['n']}"


def markdown(summary: Mapping[str, Any], alpha: float = 0.05, n_resamples: int = 10_000) -> str:
    """summary.md: context, how to read it, one table per metric and the paired comparisons."""
    lines = [f"# Comparison: {', '.join(summary['dataset'])} ({', '.join(summary['protocol'])})", ""]
    lines += header_lines(summary) + legend_lines(summary, alpha)
    for metric in summary["results"]:
        lines += metric_lines(summary, metric, alpha)
    return "\n".join(lines + paired_lines(summary, n_resamples) + curve_lines(summary) + robustness_lines(summary) + timing_lines(summary)) + "\n"


def timing_lines(summary: Mapping[str, Any]) -> list[str]:
    """The run's time: estimated (the plan) and taken, per learner, what a time limit scaled and whether it stopped the run."""
    timing = summary.get("timing")
    if not timing:
        return []
    minutes = lambda seconds: "–" if seconds is None else f"{seconds / 60:.1f} min"  # noqa: E731
    lines = ["", "## Time", "", f"Estimated {minutes(timing.get('estimated_s'))}, took {minutes(timing.get('wall_s'))} "
             f"(torch threads: {timing.get('threads')}; the estimate is the most the stages take).", ""]  # fmt: skip
    lines += ["| learner | tasks | estimated | took |", "|---|---|---|---|"]
    for learner, times in timing.get("learners", {}).items():
        lines.append(f"| {learner} | {times.get('tasks', '–')} | {minutes(times.get('estimated_s'))} | {minutes(times.get('wall_s'))} |")
    lines += [f"\nScaled to the time limit: {line}." for line in describe_scaling(timing.get("scaled", {}))]
    if timing.get("stopped"):
        lines.append(f"\n**Stopped early:** {timing['stopped']}.")
    return lines


def without_nan(value: Any) -> Any:
    """NaN -> None everywhere, so summary.json is strict JSON."""
    if isinstance(value, dict):
        return {k: without_nan(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [without_nan(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    return None if isinstance(value, float) and math.isnan(value) else value


def write_report(
    rows: Sequence[Mapping[str, Any]],
    out: str | Path,
    metrics: Sequence[str] = METRICS,
    plot_metrics: Sequence[str] = ("bal_acc", "auroc"),
    reference: str | None = "finetune",
    confidence: float = 0.95,
    alpha: float = 0.05,
    n_resamples: int = 10_000,
    header: Mapping[str, Any] | None = None,
    target: Mapping[str, float] | None = None,
    timing: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write summary.md, summary.json, label_efficiency_*.png, confusion_*.png and, for label budgets,
    learning_curves.png; return the summary.

    ``metrics[0]`` is the primary metric (the paired-comparison table uses it); ``header`` holds
    run context (class names, split, ``smoke``) shown under the title and kept in summary.json. The tables
    pool the clean rows; rows of robustness conditions (corruptions, label noise) get their own section and
    robustness_*.png / label_noise_*.png (``medfew.evaluation.robustness_report``);
    ``target`` ({metric: score}, ``report.target``) asks the learning curves for the labels needed;
    ``timing`` (estimated and wall seconds, per learner, what a time limit scaled) closes summary.md.
    """
    if not rows:
        raise ValueError("no result rows to report")
    unknown = [m for m in (*metrics, *plot_metrics) if m not in METRICS]
    if unknown or not set(plot_metrics) <= set(metrics):
        raise ValueError(f"report metrics {list(metrics)} / plot_metrics {list(plot_metrics)}: each must be one of {METRICS}, and every plot metric in metrics")
    target = check_target(target, metrics)
    out = Path(out)
    frame, every_condition = split_conditions(to_frame(rows))  # the tables pool clean rows only
    summary = summarize(frame, metrics, reference, confidence, n_resamples, header)
    summary["robustness"] = robustness_summary(every_condition, metrics[0])
    summary["target"] = target
    summary["learning_curves"] = learning_curves(frame, metrics, target, confidence, n_resamples)
    summary["timing"] = dict(timing or {})
    write_json(out / "summary.json", without_nan(summary))
    write_text(out / "summary.md", markdown(summary, alpha, n_resamples))
    with fonts_for(drawn_names(frame, summary)):
        plot_label_efficiency(summary, plot_metrics, out)
        plot_confusions(frame, out, summary)
        plot_robustness(summary, out)
        if summary["learning_curves"]:
            plot_learning_curves(summary, curve_metrics(summary, plot_metrics), out)
    return summary

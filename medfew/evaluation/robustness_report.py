"""The robustness part of a comparison's report (``medfew.evaluation.robustness`` conditions).

Per setting: each learner's primary metric for every corruption and severity and every label-noise
share, its relative change from the clean score, and the learners' ranks clean and under corruption;
plots of the metric against severity (one panel per corruption) and against the label-noise share.
Every mean is over the rows of one learner, setting and condition (its folds, seeds and episodes).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from medfew.data.corruptions import CORRUPTIONS
from medfew.evaluation.metrics import LOWER_IS_BETTER
from medfew.evaluation.plots import NAMES, learner_colors, save_figure, title
from medfew.evaluation.robustness import CLEAN

CONDITION_COLUMNS = {"corruption": CLEAN, "severity": 0, "label_noise": 0.0}


def split_conditions(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the clean rows, every row), the condition columns filled in (a row without them is clean)."""
    frame = frame.copy()
    for column, default in CONDITION_COLUMNS.items():
        values = frame[column] if column in frame else pd.Series(default, index=frame.index)
        values = values.replace("", np.nan).fillna(default)
        frame[column] = values.astype(str) if column == "corruption" else pd.to_numeric(values)
    unknown = sorted(set(frame["corruption"]) - {CLEAN, *CORRUPTIONS})
    if unknown:
        raise ValueError(f"result rows name unknown corruptions {unknown}; a row's corruption is '{CLEAN}' or one of {', '.join(CORRUPTIONS)}")
    clean = (frame["corruption"] == CLEAN) & (frame["label_noise"] == 0)
    return frame[clean], frame


def cell(values: pd.Series, clean: float) -> dict[str, Any]:
    """Mean of a condition's scores, its count and its change from the clean mean, relative to it."""
    mean = float(values.mean())
    change = (mean - clean) / clean if clean and not math.isnan(clean) else math.nan
    return {"mean": mean, "n": int(values.notna().sum()), "change": change}


def robustness_summary(frame: pd.DataFrame, metric: str) -> dict[str, Any]:
    """{setting: {corruptions, label_noise, ranks}} of ``metric`` over ``frame`` (every row, conditions
    filled: ``split_conditions``); {} when every row is clean."""
    if ((frame["corruption"] == CLEAN) & (frame["label_noise"] == 0)).all():
        return {}
    summary = {}
    for setting, rows in frame.groupby("setting", sort=False):
        clean_rows = rows[(rows.corruption == CLEAN) & (rows.label_noise == 0)]
        clean = clean_rows.groupby("learner", sort=False)[metric].mean()
        corrupted = rows[(rows.corruption != CLEAN) & (rows.label_noise == 0)]
        corruptions = {
            name: {
                learner: {"0": cell(clean_rows[clean_rows.learner == learner][metric], clean[learner])}
                | {str(int(severity)): cell(g[metric], clean.get(learner, math.nan)) for severity, g in by_learner.groupby("severity")}
                for learner, by_learner in group.groupby("learner", sort=False)
            }
            for name, group in corrupted.groupby("corruption", sort=False)
        }
        noisy = rows[(rows.corruption == CLEAN)]
        label_noise = {}
        if (noisy.label_noise > 0).any():
            label_noise = {
                learner: {f"{rate:g}": cell(g[metric], clean.get(learner, math.nan)) for rate, g in by_learner.groupby("label_noise")}
                for learner, by_learner in noisy.groupby("learner", sort=False)
            }
        summary[setting] = {"corruptions": corruptions, "label_noise": label_noise, "ranks": ranks(clean, corrupted, metric)}
    return summary


def ranks(clean: pd.Series, corrupted: pd.DataFrame, metric: str) -> dict[str, dict[str, int]]:
    """Each learner's rank (1: best) by its clean mean and by its mean over every corruption and severity."""
    if corrupted.empty:
        return {}
    ascending = metric in LOWER_IS_BETTER
    under = corrupted.groupby("learner", sort=False)[metric].mean()
    return {
        "clean": {k: int(v) for k, v in clean.rank(ascending=ascending, method="min").items()},
        "corrupted": {k: int(v) for k, v in under.rank(ascending=ascending, method="min").items()},
    }


def shown(c: Mapping[str, Any] | None, baseline: bool = False) -> str:
    """'0.812 (-4.1 %)'; the clean cell without a change."""
    if c is None or math.isnan(c["mean"]):
        return "–"
    if baseline or math.isnan(c["change"]):
        return f"{c['mean']:.3f}"
    return f"{c['mean']:.3f} ({100 * c['change']:+.1f} %)"


def robustness_lines(summary: Mapping[str, Any]) -> list[str]:
    """summary.md's robustness section: per setting, the corruption table, the ranks and the label-noise table."""
    robustness, metric = summary.get("robustness") or {}, summary["metrics"][0]
    if not robustness:
        return []
    lines = [
        "",
        f"## Robustness ({metric}, relative change from clean)",
        "",
        "Corruptions change the test (query) images only, label noise the training (support and val) labels only; both "
        "are seeded by run seed, fold, tasks and condition, so every learner sees the same. Cells: mean over the "
        "folds, seeds and episodes (relative change from the learner's clean mean). Plots: robustness_*.png, label_noise_*.png.",
    ]
    for setting, found in robustness.items():
        severities = sorted({s for by_learner in found["corruptions"].values() for c in by_learner.values() for s in c if s != "0"}, key=int)
        if found["corruptions"]:
            lines += ["", f"### {setting}: corruptions", "", "| learner | corruption | clean | " + " | ".join(f"severity {s}" for s in severities) + " |"]
            lines.append("|---" * (len(severities) + 3) + "|")
            for name, by_learner in found["corruptions"].items():
                for learner, cells in by_learner.items():
                    row = [shown(cells.get("0"), baseline=True), *(shown(cells.get(s)) for s in severities)]
                    lines.append(f"| {learner} | {name} | " + " | ".join(row) + " |")
        if found["ranks"]:
            order = lambda by: " > ".join(sorted(by, key=by.get))  # noqa: E731
            same = order(found["ranks"]["clean"]) == order(found["ranks"]["corrupted"])
            lines += [
                "",
                f"Ranking by {metric}: clean {order(found['ranks']['clean'])}; mean over every corruption and severity "
                f"{order(found['ranks']['corrupted'])} ({'unchanged' if same else 'changed'}).",
            ]
        if found["label_noise"]:
            rates = sorted({r for cells in found["label_noise"].values() for r in cells}, key=float)
            lines += ["", f"### {setting}: label noise", "", "| learner | " + " | ".join(f"{100 * float(r):g} % flipped" for r in rates) + " |"]
            lines.append("|---" * (len(rates) + 1) + "|")
            for learner, cells in found["label_noise"].items():
                lines.append(f"| {learner} | " + " | ".join(shown(cells.get(r), baseline=float(r) == 0) for r in rates) + " |")
    return lines


def plot_robustness(summary: Mapping[str, Any], out: Path) -> list[Path]:
    """robustness_<setting>.png (metric against severity, a panel per corruption, 0 = clean) and
    label_noise_<setting>.png (metric against the share of flipped training labels), a line per learner."""
    metric, paths = summary["metrics"][0], []
    colors = learner_colors(summary["learners"])
    for setting, found in (summary.get("robustness") or {}).items():
        stem = setting.replace("=", "_")
        if found["corruptions"]:
            names = list(found["corruptions"])
            columns = min(4, len(names))
            rows = math.ceil(len(names) / columns)
            fig, axes = plt.subplots(rows, columns, figsize=(3.6 * columns + 1.6, 3.2 * rows + 0.6), squeeze=False, sharey=True, layout="constrained")
            for ax, name in zip(axes.flat, names):
                for learner, cells in found["corruptions"][name].items():
                    x = sorted(cells, key=int)
                    ax.plot([int(s) for s in x], [cells[s]["mean"] for s in x], marker="o", color=colors[learner], label=learner)
                ax.set_title(name, fontsize=10)
                ax.set_xlabel("severity (0 = clean)")
                ax.set_xticks(range(0, 6))
                ax.grid(alpha=0.3)
            for ax in axes[:, 0]:
                ax.set_ylabel(NAMES[metric])
            for ax in axes.flat[len(names) :]:
                ax.axis("off")
            handles, labels = axes.flat[0].get_legend_handles_labels()
            fig.legend(handles, labels, loc="outside right center", fontsize=8)
            fig.suptitle(title(summary, f"{NAMES[metric]} against corruption severity of the test images, {setting}"))
            paths.append(save_figure(fig, out / f"robustness_{stem}.png"))
        if found["label_noise"]:
            fig, ax = plt.subplots(figsize=(6.4, 4.2), layout="constrained")
            for learner, cells in found["label_noise"].items():
                x = sorted(cells, key=float)
                ax.plot([100 * float(r) for r in x], [cells[r]["mean"] for r in x], marker="o", color=colors[learner], label=learner)
            ax.set_xlabel("% of training labels flipped")
            ax.set_ylabel(NAMES[metric])
            ax.grid(alpha=0.3)
            fig.legend(loc="outside right center", fontsize=8)
            fig.suptitle(title(summary, f"{NAMES[metric]} against label noise, {setting}"))
            paths.append(save_figure(fig, out / f"label_noise_{stem}.png"))
    return paths

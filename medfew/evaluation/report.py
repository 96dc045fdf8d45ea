"""summary.md, summary.json and PNG plots from the rows of results.csv.

Each (learner, setting) is summarised over its units: episodes (scores averaged over
seeds first) when the protocol has several, else seeds. Paired comparisons with the
reference learner use the units both learners were scored on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from dataclasses import asdict
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from medfew.evaluation.metrics import LOWER_IS_BETTER, METRICS  # noqa: E402
from medfew.evaluation.stats import mean_ci, paired_comparison  # noqa: E402


def to_frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows))
    for column in ("value", "seed", "episode", *METRICS):
        frame[column] = pd.to_numeric(frame[column])
    return frame


def units(group: pd.DataFrame, metric: str) -> pd.Series:
    """Scores per unit: per episode (mean over seeds) when there are several episodes, else per seed."""
    unit = "episode" if group["episode"].nunique() > 1 else "seed"
    return group.groupby(unit)[metric].mean()


def summarize(
    frame: pd.DataFrame, metrics: Sequence[str], reference: str | None, confidence: float = 0.95, n_resamples: int = 10_000
) -> dict[str, Any]:
    """Mean ± CI per metric, learner and setting, and the paired comparison with ``reference``."""
    settings = frame[["setting", "kind", "value"]].drop_duplicates("setting")
    kinds = {kind: i for i, kind in enumerate(dict.fromkeys(settings["kind"]))}  # protocol order
    settings = settings.sort_values(["kind", "value"], key=lambda c: c.map(kinds) if c.name == "kind" else c)
    learners = list(dict.fromkeys(frame["learner"]))
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for metric in metrics:
        table[metric] = {}
        for learner in learners:
            table[metric][learner] = {}
            for setting in settings["setting"]:
                group = frame[(frame.learner == learner) & (frame.setting == setting)]
                if group.empty:
                    continue
                scores = units(group, metric)
                estimate = mean_ci(scores.to_numpy(), confidence)
                cell = {"mean": estimate.mean, "ci": estimate.half_width, "n": estimate.n, "vs_reference": None}
                ref = frame[(frame.learner == reference) & (frame.setting == setting)]
                if learner != reference and not ref.empty:
                    ref_scores = units(ref, metric)
                    common = scores.index.intersection(ref_scores.index)
                    if len(common):
                        cmp = paired_comparison(scores[common].to_numpy(), ref_scores[common].to_numpy(), n_resamples)
                        cell["vs_reference"] = asdict(cmp)
                table[metric][learner][setting] = cell
    hashes = frame.groupby(["setting", "learner"])["split_hash"].apply(lambda h: sorted(set(h)))
    identical = all(len({tuple(h) for h in hashes[s]}) == 1 for s in settings["setting"])
    return {
        "dataset": sorted(set(frame["dataset"])),
        "protocol": sorted(set(frame["protocol"])),
        "metrics": list(metrics),
        "reference": reference,
        "confidence": confidence,
        "learners": learners,
        "settings": settings.to_dict("records"),
        "identical_splits": identical,
        "split_hashes": {s: sorted(set(frame[frame.setting == s]["split_hash"])) for s in settings["setting"]},
        "results": table,
    }


def best_learners(summary: Mapping[str, Any], metric: str, setting: str) -> set[str]:
    cells = {lr: c[setting]["mean"] for lr, c in summary["results"][metric].items() if setting in c}
    cells = {lr: m for lr, m in cells.items() if not np.isnan(m)}
    if not cells:
        return set()
    target = (min if metric in LOWER_IS_BETTER else max)(cells.values())
    return {lr for lr, m in cells.items() if m == target}


def summary_frames(summary: Mapping[str, Any]) -> dict[str, pd.DataFrame]:
    """One learner x setting table of "mean ± ci" strings per metric."""
    settings = [s["setting"] for s in summary["settings"]]
    frames = {}
    for metric, by_learner in summary["results"].items():
        frames[metric] = pd.DataFrame(
            [[learner] + [format_cell(cells.get(s)) for s in settings] for learner, cells in by_learner.items()],
            columns=["learner", *settings],
        )
    return frames


def format_cell(cell: Mapping[str, Any] | None) -> str:
    if cell is None:
        return "-"
    return f"{cell['mean']:.3f}" if np.isnan(cell["ci"]) else f"{cell['mean']:.3f} ± {cell['ci']:.3f}"


def format_p(p: float, n_resamples: int) -> str:
    """A bootstrap p of 0 means "below the resolution 1 / n_resamples"."""
    return f"< {1 / n_resamples:.0e}" if p == 0 else f"{p:.3g}"


def markdown(summary: Mapping[str, Any], alpha: float = 0.05, n_resamples: int = 10_000) -> str:
    settings = [s["setting"] for s in summary["settings"]]
    reference = summary["reference"]
    lines = [
        f"# Comparison: {', '.join(summary['dataset'])} ({', '.join(summary['protocol'])})",
        "",
        f"Mean ± {summary['confidence']:.0%} CI (Student t) over episodes, or over seeds when each seed has one "
        f"test set. **Bold**: best in the column. †: differs from `{reference}` (Wilcoxon signed-rank p < {alpha}).",
    ]
    if not summary["identical_splits"]:
        lines += ["", "WARNING: learners were scored on different episodes / label subsets (split hashes differ)."]
    for metric, by_learner in summary["results"].items():
        arrow = "lower is better" if metric in LOWER_IS_BETTER else "higher is better"
        lines += ["", f"## {metric} ({arrow})", "", "| learner | " + " | ".join(settings) + " |", "|---" * (len(settings) + 1) + "|"]
        for learner, cells in by_learner.items():
            row = []
            for s in settings:
                text = format_cell(cells.get(s))
                if s in cells and learner in best_learners(summary, metric, s):
                    text = f"**{text}**"
                versus = cells.get(s, {}).get("vs_reference")
                if versus and versus["p_wilcoxon"] < alpha:
                    text += " †"
                row.append(text)
            lines.append(f"| {learner} | " + " | ".join(row) + " |")
    primary = summary["metrics"][0]
    paired = [
        (learner, s, cell["vs_reference"])
        for learner, cells in summary["results"][primary].items()
        for s, cell in cells.items()
        if cell["vs_reference"]
    ]
    if paired:
        lines += [
            "",
            f"## Paired comparison with `{reference}` ({primary}, learner - {reference})",
            "",
            "Units are episodes or seeds; with n units the two-sided Wilcoxon p is at least 2 / 2^n, and a "
            "bootstrap over fewer than about 10 units is optimistic: add seeds or episodes before claiming a difference.",
            "",
            "| learner | setting | mean diff | 95% CI (paired bootstrap) | p (bootstrap) | p (Wilcoxon) | n |",
            "|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {lr} | {s} | {v['mean_diff']:+.3f} | [{v['low']:+.3f}, {v['high']:+.3f}] | "
            f"{format_p(v['p_bootstrap'], n_resamples)} | {v['p_wilcoxon']:.3g} | {v['n']} |"
            for lr, s, v in paired
        ]
    return "\n".join(lines) + "\n"


def plot_label_efficiency(summary: Mapping[str, Any], metrics: Sequence[str], out: Path) -> list[Path]:
    """One PNG per budget kind: metric versus shots / labels per class / fraction, CI bands."""
    paths = []
    for kind in dict.fromkeys(s["kind"] for s in summary["settings"]):
        settings = [s for s in summary["settings"] if s["kind"] == kind]
        fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.6), squeeze=False)
        for ax, metric in zip(axes[0], metrics):
            for learner, cells in summary["results"][metric].items():
                points = [(s["value"], cells[s["setting"]]) for s in settings if s["setting"] in cells]
                x = np.array([p[0] for p in points], dtype=float)
                y = np.array([p[1]["mean"] for p in points])
                ci = np.nan_to_num(np.array([p[1]["ci"] for p in points]))
                (line,) = ax.plot(x, y, marker="o", label=learner)
                ax.fill_between(x, y - ci, y + ci, alpha=0.2, color=line.get_color())
            if kind == "fraction":
                ax.set_xscale("log")
            ax.set_xlabel(kind)
            ax.set_ylabel(metric)
            ax.grid(alpha=0.3)
        axes[0][-1].legend(fontsize=8)
        fig.suptitle(f"{', '.join(summary['dataset'])}: label efficiency")
        paths.append(save_figure(fig, out / f"label_efficiency_{kind}.png"))
    return paths


def summed_confusion(group: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    """Confusion counts of all rows, in the source classes' name space (episodes differ in classes)."""
    parts = [json.loads(c) for c in group["confusion"]]
    classes = sorted({c for p in parts for c in p["classes"]})
    total = np.zeros((len(classes), len(classes)))
    for part in parts:
        idx = [classes.index(c) for c in part["classes"]]
        total[np.ix_(idx, idx)] += np.array(part["counts"])
    return classes, total


def plot_confusions(frame: pd.DataFrame, out: Path) -> list[Path]:
    """One PNG per setting: a row-normalised confusion matrix per learner (all seeds and episodes)."""
    paths = []
    learners = list(dict.fromkeys(frame["learner"]))
    for setting, by_setting in frame.groupby("setting", sort=False):
        fig, axes = plt.subplots(1, len(learners), figsize=(3.4 * len(learners), 3.4), squeeze=False)
        for ax, learner in zip(axes[0], learners):
            group = by_setting[by_setting.learner == learner]
            ax.set_title(learner, fontsize=9)
            if group.empty:
                ax.axis("off")
                continue
            classes, counts = summed_confusion(group)
            rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
            ax.imshow(rates, vmin=0, vmax=1, cmap="Blues")
            for (i, j), rate in np.ndenumerate(rates):
                ax.text(j, i, f"{rate:.2f}", ha="center", va="center", fontsize=7, color="white" if rate > 0.5 else "black")
            ticks = range(len(classes))
            ax.set_xticks(ticks, [c[:14] for c in classes], rotation=45, ha="right", fontsize=7)
            ax.set_yticks(ticks, [c[:14] for c in classes], fontsize=7)
            ax.set_xlabel("predicted", fontsize=8)
            ax.set_ylabel("true", fontsize=8)
        fig.suptitle(f"confusion, {setting}")
        paths.append(save_figure(fig, out / f"confusion_{setting.replace('=', '_')}.png"))
    return paths


def without_nan(value: Any) -> Any:
    """NaN -> None everywhere, so summary.json is strict JSON."""
    if isinstance(value, dict):
        return {k: without_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_nan(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value.item() if isinstance(value, np.generic) else value


def write_report(
    rows: Sequence[Mapping[str, Any]],
    out: str | Path,
    metrics: Sequence[str] = METRICS,
    plot_metrics: Sequence[str] = ("bal_acc", "auroc"),
    reference: str | None = "finetune",
    confidence: float = 0.95,
    alpha: float = 0.05,
    n_resamples: int = 10_000,
) -> dict[str, Any]:
    """Write summary.md, summary.json, label_efficiency_*.png and confusion_*.png; return the summary.

    ``metrics[0]`` is the primary metric (the paired-comparison table uses it).
    """
    if not rows:
        raise ValueError("no result rows to report")
    unknown = [m for m in (*metrics, *plot_metrics) if m not in METRICS]
    if unknown or not set(plot_metrics) <= set(metrics):
        raise ValueError(f"report metrics {list(metrics)} / plot_metrics {list(plot_metrics)}: each must be one of {METRICS}, and every plot metric in metrics")
    out = Path(out)
    frame = to_frame(rows)
    summary = summarize(frame, metrics, reference, confidence, n_resamples)
    (out / "summary.json").write_text(json.dumps(without_nan(summary), indent=2))
    (out / "summary.md").write_text(markdown(summary, alpha, n_resamples))
    plot_label_efficiency(summary, plot_metrics, out)
    plot_confusions(frame, out)
    return summary


def save_figure(fig, path: Path) -> Path:
    """Lay out, write (PNG, 120 dpi) and close ``fig``."""
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path

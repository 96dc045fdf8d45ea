"""The report's plots: metric versus budget (a bar chart at a single setting) and confusion matrices.

Each plot says what it shows in five seconds: the title names the protocol and the metric, the x
axis the budget (shots, labels per class, % of labels), a dashed line the chance level, bands and
error bars the intervals; the legend sits outside the data. Every PNG is written atomically.
Names in other scripts (class names such as 肺炎) are drawn with an installed font that has their
glyphs (``fonts_for``); names no installed font can draw are named in one warning.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import font_manager  # noqa: E402
from matplotlib.ft2font import FT2Font  # noqa: E402

from medfew.evaluation.metrics import LOWER_IS_BETTER  # noqa: E402
from medfew.files import write_atomic  # noqa: E402

NAMES = {"acc": "accuracy", "bal_acc": "balanced accuracy", "macro_f1": "macro-F1", "auroc": "AUROC", "ece": "ECE"}
KIND_AXIS = {"shots": "shots per class (K)", "per_class": "labels per class", "fraction": "% of training labels"}
KIND_PROTOCOL = {"shots": "few-shot", "per_class": "label budget", "fraction": "label budget"}
SMOKE = "SMOKE RUN: tiny settings, the numbers mean nothing"
FONT = "DejaVu Sans"  # matplotlib's own: Latin, Greek, Cyrillic
PLACEHOLDER_FONTS = ("Last Resort",)  # draw a box for every character
log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=None)
def characters(font_file: str) -> frozenset[int]:
    """The code points a font file has glyphs for."""
    return frozenset(FT2Font(font_file).get_charmap())


def font_families(texts: Iterable[str]) -> tuple[list[str], list[str]]:
    """(``FONT`` and the installed font families that draw the rest of ``texts``, in name order; the texts
    that no installed font draws). matplotlib (>= 3.6) takes each glyph from the first family that has it."""
    texts = sorted(set(texts))
    missing = {ord(c) for text in texts for c in text if not c.isspace()} - characters(font_manager.findfont(FONT))
    families = [FONT]
    for entry in sorted(font_manager.fontManager.ttflist, key=lambda entry: (entry.name, entry.weight != 400)):
        if not missing:
            break
        if entry.name not in families and not entry.name.startswith(PLACEHOLDER_FONTS) and missing & characters(entry.fname):
            families.append(entry.name)
            missing -= characters(entry.fname)
    return families, [text for text in texts if any(ord(c) in missing for c in text)]


@contextlib.contextmanager
def fonts_for(texts: Iterable[str]) -> Iterator[None]:
    """Draw ``texts`` (class, learner and dataset names) with fonts that have their glyphs; names none of the
    installed fonts draws are named in one warning instead of one matplotlib warning per glyph."""
    families, undrawn = font_families(texts)
    with plt.rc_context({"font.family": families}), warnings.catch_warnings():
        if undrawn:
            log.warning(
                "no installed font draws %s: the plots show boxes there (summary.md spells them right). Install a font "
                "that does, e.g. Noto Sans CJK for Chinese, Japanese or Korean (Debian / Ubuntu: apt install fonts-noto-cjk), "
                "then delete matplotlib's font list (%s/fontlist-*.json) so that it finds the new font",
                ", ".join(undrawn), matplotlib.get_cachedir(),
            )  # fmt: skip
            warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font")
        yield


def drawn_names(frame: pd.DataFrame, summary: Mapping[str, Any]) -> set[str]:
    """The names the report's plots draw: datasets, learners and the classes of the confusion matrices."""
    return {*summary["dataset"], *summary["learners"], *summed_confusion(frame)[0]}


def learner_colors(learners: Sequence[str]) -> dict[str, Any]:
    """One colour per learner, the same in every plot."""
    cmap = plt.get_cmap("tab10" if len(learners) <= 10 else "tab20")
    return {learner: cmap(i % cmap.N) for i, learner in enumerate(learners)}


def title(summary: Mapping[str, Any], text: str) -> str:
    """``text`` after the dataset, behind the smoke-run warning when there is one."""
    prefix = f"{SMOKE}\n" if summary["header"].get("smoke") else ""
    return f"{prefix}{', '.join(summary['dataset'])}: {text}"


def chance_style(metric: str) -> dict[str, str]:
    """Label and dash of the chance line: the majority-class share for accuracy, else chance."""
    return {"label": "majority class", "linestyle": ":"} if metric == "acc" else {"label": "chance", "linestyle": "--"}


def budget(setting: Mapping[str, Any]) -> float:
    """A setting's value on the plots' budget axis: shots, labels per class, or % of the training labels."""
    return setting["value"] * (100 if setting["kind"] == "fraction" else 1)


def plot_lines(ax: Any, summary: Mapping[str, Any], metric: str, settings: list[dict], colors: Mapping[str, Any]) -> None:
    """One line per learner with its CI band, and the chance line, over the settings of one kind."""
    x = np.array([budget(s) for s in settings], dtype=float)
    for learner, cells in summary["results"][metric].items():
        got = [(xi, cells[s["setting"]]) for xi, s in zip(x, settings) if s["setting"] in cells]
        xs, means = [g[0] for g in got], np.array([g[1]["mean"] for g in got], dtype=float)
        lows, highs = (np.array([g[1][k] for g in got], dtype=float) for k in ("low", "high"))
        errors = np.nan_to_num([means - lows, highs - means]).tolist()  # lists: matplotlib warns on a (2, 1) array
        ax.errorbar(xs, means, yerr=errors, marker="o", capsize=3, elinewidth=0.8, color=colors[learner], label=learner)
        ax.fill_between(xs, lows, highs, color=colors[learner], alpha=0.15, linewidth=0)
    levels = [s["chance"][metric] for s in settings]
    if levels[0] is not None:
        ax.plot(x, levels, color="grey", **chance_style(metric))
    if x.max() / max(x.min(), 1e-9) >= 10:
        ax.set_xscale("log")
    ax.set_xticks(x, [f"{v:g}\n{s['labelled']} img" for v, s in zip(x, settings)])
    ax.minorticks_off()
    ax.set_xlabel(KIND_AXIS.get(settings[0]["kind"], settings[0]["kind"]))


def plot_bars(ax: Any, summary: Mapping[str, Any], metric: str, setting: Mapping[str, Any], colors: Mapping[str, Any]) -> None:
    """One bar per learner with its CI as an error bar, and the chance line, at a single setting."""
    cells = {lr: c[setting["setting"]] for lr, c in summary["results"][metric].items() if setting["setting"] in c}
    means = np.array([c["mean"] for c in cells.values()], dtype=float)
    errors = np.nan_to_num([[c["mean"] - c["low"] for c in cells.values()], [c["high"] - c["mean"] for c in cells.values()]]).tolist()
    ax.bar(range(len(cells)), means, yerr=errors, capsize=4, color=[colors[lr] for lr in cells])
    ax.set_xticks(range(len(cells)), list(cells), rotation=30, ha="right")
    if setting["chance"][metric] is not None:
        ax.axhline(setting["chance"][metric], color="grey", **chance_style(metric))
    ax.set_xlabel(f"learner ({KIND_AXIS.get(setting['kind'], setting['kind'])}: {budget(setting):g}, {setting['labelled']} images)")


def plot_label_efficiency(summary: Mapping[str, Any], metrics: Sequence[str], out: Path) -> list[Path]:
    """One PNG per budget kind: each metric versus the budget (a bar chart at a single setting), CI bands, chance line."""
    paths, colors = [], learner_colors(summary["learners"])
    for kind in dict.fromkeys(s["kind"] for s in summary["settings"]):
        settings = [s for s in summary["settings"] if s["kind"] == kind]
        fig, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 4.2), squeeze=False, layout="constrained")
        for ax, metric in zip(axes[0], metrics):
            if len(settings) == 1:
                plot_bars(ax, summary, metric, settings[0], colors)
            else:
                plot_lines(ax, summary, metric, settings, colors)
            ax.set_ylabel(f"{NAMES[metric]} ({'lower' if metric in LOWER_IS_BETTER else 'higher'} is better)")
            ax.set_ylim(0, None if metric in LOWER_IS_BETTER else 1.02)
            ax.grid(alpha=0.3)
        handles = {label: h for ax in axes[0] for h, label in zip(*ax.get_legend_handles_labels())}
        order = sorted(handles, key=lambda label: label not in colors)  # learners, then the chance lines
        fig.legend([handles[label] for label in order], order, loc="outside right center", fontsize=8)
        what = ", ".join(NAMES[m] for m in metrics)
        versus = f" at {settings[0]['setting']}" if len(settings) == 1 else f" vs {KIND_AXIS.get(kind, kind)}"
        fig.suptitle(title(summary, f"{KIND_PROTOCOL.get(kind, kind)}: {what}{versus} (mean, {summary['confidence']:.0%} CI)"))
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


def plot_confusion(ax: Any, group: pd.DataFrame, learner: str) -> Any:
    """One learner's row-normalised confusion matrix, class names on both axes; returns the image."""
    classes, counts = summed_confusion(group)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    image = ax.imshow(rates, vmin=0, vmax=1, cmap="Blues")
    if len(classes) <= 12:
        for (i, j), rate in np.ndenumerate(rates):
            ax.text(j, i, f"{rate:.2f}", ha="center", va="center", fontsize=7, color="white" if rate > 0.5 else "black")
    names = [c if len(c) <= 18 else c[:17] + "…" for c in classes]
    ax.set_xticks(range(len(classes)), names, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(classes)), names, fontsize=7)
    ax.set_xlabel("predicted class", fontsize=8)
    ax.set_ylabel("true class", fontsize=8)
    ax.set_title(f"{learner} ({int(counts.sum())} predictions)", fontsize=9)
    return image


def plot_confusions(frame: pd.DataFrame, out: Path, summary: Mapping[str, Any]) -> list[Path]:
    """One PNG per setting: a grid of row-normalised confusion matrices, one per learner (all folds, seeds, episodes)."""
    paths = []
    for setting, by_setting in frame.groupby("setting", sort=False):
        learners = list(dict.fromkeys(by_setting["learner"]))
        n_classes = len(summed_confusion(by_setting)[0])
        columns = min(4, math.ceil(math.sqrt(len(learners))))
        rows = math.ceil(len(learners) / columns)
        side = max(3.4, 0.3 * n_classes + 2)
        size = (max(side * columns + 1, 6.5), side * rows + 0.6)
        fig, axes = plt.subplots(rows, columns, figsize=size, squeeze=False, layout="constrained")
        for ax, learner in zip(axes.flat, learners):
            image = plot_confusion(ax, by_setting[by_setting.learner == learner], learner)
        for ax in axes.flat[len(learners) :]:
            ax.axis("off")
        fig.colorbar(image, ax=axes, shrink=0.6, label="share of the true class's images")
        fig.suptitle(title(summary, f"confusion matrices at {setting} (rows: true class)"))
        paths.append(save_figure(fig, out / f"confusion_{setting.replace('=', '_')}.png"))
    return paths


def plot_curve(ax: Any, curve: Mapping[str, Any], color: Any, label: str) -> None:
    """One learner's measured budgets (mean, CI), its fit (solid where measured, dashed beyond) and band."""
    budgets = curve["budgets"]
    n, means = np.array([b["n"] for b in budgets]), np.array([b["mean"] for b in budgets])
    lows, highs = (np.array([np.nan if b[k] is None else b[k] for b in budgets], dtype=float) for k in ("low", "high"))
    errors = np.nan_to_num([means - lows, highs - means]).tolist()
    ax.errorbar(n, means, yerr=errors, fmt="o", capsize=3, elinewidth=0.8, color=color, label=label)
    grid, fit = np.array(curve["curve"]["n"]), np.array(curve["curve"]["fit"])
    inside = grid <= n.max() * 1.0001
    ax.plot(grid[inside], fit[inside], color=color, linewidth=1.4)
    ax.plot(grid[~inside], fit[~inside], color=color, linewidth=1.4, linestyle="--")
    if curve["curve"]["low"] is not None:
        ax.fill_between(grid, curve["curve"]["low"], curve["curve"]["high"], color=color, alpha=0.15, linewidth=0)
    needed = curve["labels_needed"]
    if needed and needed["n"] is not None:
        ax.plot([needed["n"]], [needed["target"]], marker="X", markersize=9, color=color, markeredgecolor="black", zorder=5)


def plot_learning_curves(summary: Mapping[str, Any], metrics: Sequence[str], out: Path) -> Path | None:
    """learning_curves.png: per metric, each learner's fitted curve extrapolated with its band, the measured
    budgets with their CIs, the target line and where each curve reaches it (X). None when no curve was fitted."""
    curves = summary["learning_curves"]
    metrics = [m for m in metrics if any(by_metric[m]["params"] for by_metric in curves.values())]
    if not metrics:
        return None
    colors = learner_colors(summary["learners"])
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 4.4), squeeze=False, layout="constrained")
    for ax, metric in zip(axes[0], metrics):
        largest = 0.0
        for learner, by_metric in curves.items():
            if by_metric[metric]["params"] is not None:
                plot_curve(ax, by_metric[metric], colors[learner], learner)
                largest = max(largest, by_metric[metric]["budgets"][-1]["n"])
        ax.axvline(largest, color="grey", linewidth=0.8, linestyle=":", label="largest budget measured")
        if metric in summary["target"]:
            ax.axhline(summary["target"][metric], color="black", linewidth=0.9, linestyle="-.", label=f"target {NAMES[metric]}")
        lowest = min(b["mean"] for by_metric in curves.values() if by_metric[metric]["params"] for b in by_metric[metric]["budgets"])
        ax.set_xscale("log")
        ax.set_xlabel("labelled training images (log scale)")
        ax.set_ylabel(f"{NAMES[metric]} (higher is better)")
        ax.set_ylim(max(0.0, math.floor(10 * lowest - 1) / 10), 1.02)
        ax.grid(alpha=0.3)
    handles = {label: h for ax in axes[0] for h, label in zip(*ax.get_legend_handles_labels())}
    fig.legend(list(handles.values()), list(handles), loc="outside right center", fontsize=8)
    fig.suptitle(title(summary, f"learning curves a - b n^(-c): points measured ({summary['confidence']:.0%} CI), "
                                "fit with bootstrap band, dashed beyond the data, X = labels needed"), fontsize=10)
    return save_figure(fig, out / "learning_curves.png")


def save_figure(fig: Any, path: Path) -> Path:
    """Write ``fig`` atomically as a PNG (120 dpi, cropped to what it draws) and close it."""
    try:
        return write_atomic(path, lambda temporary: fig.savefig(temporary, format="png", dpi=120, bbox_inches="tight"))
    finally:
        plt.close(fig)

"""Label issues: labelled images whose given label a model that never saw them disputes.

Each image's class probabilities come from a learner trained on the other folds of a grouped
k-fold cross-validation (``medfew.data.make_splits(split="kfold")``: a patient's images and near
duplicates stay in one fold, so no image is judged by a model that saw its copy). cleanlab's
confident learning then flags and ranks the issues (Northcutt et al., "Confident Learning:
Estimating Uncertainty in Dataset Labels", JAIR 2021, https://arxiv.org/abs/1911.00068):
``cleanlab.filter.find_label_issues`` flags, ``cleanlab.rank.get_label_quality_scores`` ranks
(lowest quality first) and ``cleanlab.count.num_label_issues`` estimates the noise rate.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from cleanlab.count import num_label_issues
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores
from omegaconf import DictConfig

from medfew.config import apply_knobs, check_training_settings
from medfew.data.dataset import UNLABELED, ImageData
from medfew.data.episodes import to_float
from medfew.data.exclusion import image_names
from medfew.data.splits import make_splits
from medfew.files import write_csv
from medfew.learners.base import PrepareContext
from medfew.learners.registry import with_learner
from medfew.training import accelerator_device

RANK_METHOD = "self_confidence"  # cleanlab's label-quality score: the predicted probability of the given label


@dataclass(frozen=True)
class LabelIssues:
    """The flagged images of a labelled dataset, most likely mislabelled first.

    Attributes:
        ranked: (F,) indices into the data of the flagged images, lowest label quality first.
        labels: (N,) given labels; suggested: (N,) the class the out-of-fold model prefers.
        quality: (N,) label-quality score in [0, 1] (low: likely wrong).
        probabilities: (N, C) out-of-fold class probabilities.
        noise_rate: cleanlab's estimate of the share of wrong labels.
    """

    ranked: np.ndarray
    labels: np.ndarray
    suggested: np.ndarray
    quality: np.ndarray
    probabilities: np.ndarray
    noise_rate: float

    def rows(self, data: ImageData) -> list[dict[str, Any]]:
        """One dict per flagged image, for label_issues.csv."""
        names = image_names(data)
        return [
            {
                "rank": rank,
                "file": names[i],
                "given_label": data.class_names[self.labels[i]],
                "suggested_label": data.class_names[self.suggested[i]],
                "label_quality": round(float(self.quality[i]), 6),
                "split": "" if data.split is None else data.split[i],
            }
            for rank, i in enumerate(self.ranked.tolist(), start=1)
        ]

    def counts(self, data: ImageData) -> dict[str, Any]:
        """Flagged images per given class, in all, and the estimated noise rate."""
        per_class = np.bincount(self.labels[self.ranked], minlength=data.n_classes)
        return {
            "labelled_images": len(self.labels),
            "label_issues": len(self.ranked),
            "estimated_noise_rate": round(self.noise_rate, 4),
            **{f"label_issues/{name}": int(n) for name, n in zip(data.class_names, per_class)},
        }


def out_of_fold_probabilities(
    data: ImageData, build: Any, folds: int = 5, split_seed: int = 0, threshold: int | None = 4, workdir: Path = Path("work"),
    device: torch.device | str = "cpu", seed: int = 0,
) -> np.ndarray:
    """(N, C) class probabilities of every image of labelled ``data``, each from a learner trained on the other folds.

    ``build(context)`` returns a prepared ``Learner`` (``medfew.evaluation.compare.build_learner``);
    its context (seed ``seed``) holds the training folds as ``base`` and every image, without labels, as
    ``unlabeled``. The folds are drawn from ``split_seed``; ``threshold`` groups near duplicates.
    """
    if (data.labels == UNLABELED).any():
        raise ValueError(f"{data.name}: {int((data.labels == UNLABELED).sum())} images have no label; judge the labelled ones")
    fractions = {"train": 1.0, "val": 0.0}
    probabilities = np.full((len(data), data.n_classes), np.nan)
    for cut in make_splits(data, "kfold", fractions, folds=folds, seed=split_seed, duplicate_threshold=threshold):
        train, test = (np.flatnonzero(cut.data.split == part) for part in ("train", "test"))
        base = data.subset(torch.from_numpy(train))
        pool = replace(data, split=None).unlabeled()  # every image, no label: SSL pretrains once, in the shared cache
        context = PrepareContext(workdir=workdir / cut.name, seed=seed, base=base, unlabeled=pool, cache=workdir / "cache")
        learner = build(context)
        images = to_float(base.images).to(device)
        state = learner.adapt(images, base.labels.to(device))
        query = to_float(data.images[torch.from_numpy(test)]).to(device)
        probabilities[test] = learner.predict(state, query).double().cpu().numpy()
    return probabilities


def label_issues(labels: np.ndarray, probabilities: np.ndarray) -> LabelIssues:
    """cleanlab's flagged images of (N,) ``labels`` given (N, C) out-of-fold ``probabilities``, ranked."""
    probabilities = probabilities / probabilities.sum(axis=1, keepdims=True)
    flagged = find_label_issues(labels, probabilities, filter_by="prune_by_noise_rate")
    quality = get_label_quality_scores(labels, probabilities, method=RANK_METHOD)
    indices = np.flatnonzero(flagged)
    ranked = indices[np.argsort(quality[indices], kind="stable")]
    return LabelIssues(
        ranked=ranked,
        labels=labels,
        suggested=probabilities.argmax(axis=1),
        quality=quality,
        probabilities=probabilities,
        noise_rate=num_label_issues(labels, probabilities) / len(labels),
    )


def find_issues(
    data: ImageData, build: Any, folds: int = 5, split_seed: int = 0, threshold: int | None = 4, workdir: Path = Path("work"),
    device: torch.device | str = "cpu", seed: int = 0,
) -> LabelIssues:
    """Out-of-fold probabilities of ``data`` (``out_of_fold_probabilities``), then cleanlab's issues (``label_issues``)."""
    probabilities = out_of_fold_probabilities(data, build, folds, split_seed, threshold, workdir, device, seed)
    return label_issues(data.labels.numpy(), probabilities)


def learner_builder(cfg: DictConfig, name: str, device: torch.device | str) -> Any:
    """``build(context)`` for ``out_of_fold_probabilities``: learner ``cfg.learner`` (named ``name``) prepared on a context."""
    from medfew.evaluation.compare import build_learner  # compare imports the report stack; only the audit needs it

    return lambda context: build_learner(cfg.learner, name, context, torch.device(device))


def audit_label_issues(cfg: DictConfig, out: Path) -> tuple[ImageData, LabelIssues]:
    """The label issues of the labelled images of ``cfg.data`` found by ``cfg.issue_finder`` (``medfew audit label_issues=true``)."""
    from medfew.evaluation.compare import searchpath
    from medfew.evaluation.folds import load_data

    settings = cfg.issue_finder
    node = with_learner(cfg, settings.learner, settings.learner_overrides, searchpath())
    apply_knobs(node.learner, cfg.knobs)
    check_training_settings(node.learner, "issue_finder.learner_overrides")
    data = load_data(cfg.data)
    labelled = data.subset(torch.nonzero(data.labels != UNLABELED).flatten())
    if labelled.n_classes < 2 or len(labelled.class_counts().nonzero()) < 2:
        raise ValueError(f"{data.name}: finding label issues needs labelled images of 2 classes or more")
    device = accelerator_device(cfg.device)
    build = learner_builder(node, settings.learner, device)
    issues = find_issues(labelled, build, settings.folds, settings.split_seed, cfg.threshold, out / "work", device, settings.seed)
    return labelled, issues


def write_issues(path: Path, rows: list[dict[str, Any]]) -> Path:
    """label_issues.csv: the rows of ``LabelIssues.rows`` (a header only when none is flagged)."""
    return write_csv(path, rows, ["rank", "file", "given_label", "suggested_label", "label_quality", "split"])

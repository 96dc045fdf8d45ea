"""The one interface every approach implements, so one protocol can score them all.

In the spirit of easyfsl's few-shot classifiers, with the adapted state returned by
``adapt`` rather than stored on the learner.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from medfew.data.dataset import ImageData
from medfew.data.episodes import Episode


@dataclass(frozen=True)
class PrepareContext:
    """What a learner may use before a task's labels are seen.

    Attributes:
        base: labelled data of the training classes (base classes in the episode
            protocol; the labelled budget in the label-budget protocol), or None.
        val: labelled data for model selection (val classes or the val split), or None.
        unlabeled: images without labels for self-supervised pretraining, or None.
        workdir: folder for this learner's checkpoints; a rerun resumes from it.
        seed: the run's seed.
        logger: a W&B run (``medfew.tracking.start_wandb``) to log training to, or None.
        cache: run-wide folder for training that learners and settings share (SSL
            pretraining, keyed by its pool, seed and settings), or None: all in ``workdir``.
        monitor: labelled images (outside ``unlabeled``) whose kNN accuracy SSL pretraining
            logs per epoch and may stop on (``ssl.patience``), or None: the spread of pool images.
    """

    workdir: Path
    seed: int = 0
    base: ImageData | None = None
    val: ImageData | None = None
    unlabeled: ImageData | None = None
    logger: Any = None
    cache: Path | None = None
    monitor: ImageData | None = None


def support_ways(support_labels: Tensor, limit: int | None = None) -> int:
    """n_way of a support set labelled 0..n_way-1 with every class present.

    Raises if a class in 0..max has no support image, or if n_way exceeds ``limit`` (the most
    classes a learner's fixed head can score).
    """
    if support_labels.numel() == 0:
        raise ValueError("the support set is empty; every class needs at least one labelled image")
    counts = torch.bincount(support_labels)
    n_way = len(counts)
    if limit is not None and n_way > limit:
        raise ValueError(f"the support set has {n_way} classes but this learner's head has {limit} outputs (n_way)")
    missing = torch.nonzero(counts == 0).flatten().tolist()
    if missing:
        raise ValueError(
            f"the support set has no image of class {missing[0]} (labels must be 0..n_way-1 with every class "
            f"present; counts per class: {counts.tolist()})"
        )
    return n_way


class Learner(nn.Module, ABC):
    """prepare(context) once, then adapt(support) -> state and predict(state, query) per task.

    Images are float (B, C, H, W) in [0, 1]; labels are 0..n_way-1 and every class is
    present in the support set.
    """

    def prepare(self, context: PrepareContext) -> None:
        """Train on what may be used before any task is seen (default: nothing)."""

    @abstractmethod
    def adapt(self, support: Tensor, support_labels: Tensor, val: tuple[Tensor, Tensor] | None = None) -> Any:
        """Learn from a labelled support set; return the state ``predict`` needs."""

    @abstractmethod
    def predict(self, state: Any, query: Tensor) -> Tensor:
        """(n_query, n_way) class probabilities (rows sum to one)."""

    def forward(self, episode: Episode) -> Tensor:
        return self.predict(self.adapt(episode.support, episode.support_labels), episode.query)

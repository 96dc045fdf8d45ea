"""Robustness conditions of a protocol: corrupted test images and flipped training labels.

A ``Condition`` is one way a task is changed before scoring: the clean task; its query images
corrupted (``medfew.data.corruptions``, one corruption at one severity); or a share of its
training labels flipped (``medfew.data.label_noise``): support and val labels, never query labels.
Corruptions and flips are seeded by the run's seed, the fold's data, the tasks' split hash, the
condition and the episode, never by the learner, so every learner sees the same corrupted images
and the same flipped labels. Each condition's rows carry their own split hash, so rows of different
conditions never pool.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from medfew.data.corruptions import check_corruption, corrupt, parameter
from medfew.data.label_noise import check_label_noise, flip_labels
from medfew.data.dataset import ImageData
from medfew.hashing import content_hash
from medfew.learners.base import PrepareContext
from medfew.seeding import derive_seed, seeded_generator

CLEAN = "none"  # the corruption column of rows on clean images
SEVERITY_LEVELS = (1, 2, 3, 4, 5)


def unique(values: Any) -> tuple:
    """``values`` without repeats, in their order."""
    return tuple(dict.fromkeys(values))


@dataclass(frozen=True)
class Condition:
    """One robustness condition: ``corruption`` of the query images at ``severity`` (``CLEAN``, 0: none),
    and ``label_noise``, the share of training labels flipped."""

    corruption: str = CLEAN
    severity: int = 0
    label_noise: float = 0.0

    @property
    def clean(self) -> bool:
        return self.corruption == CLEAN and self.label_noise == 0

    @property
    def name(self) -> str:
        """'clean', 'blur@3' or 'label_noise=0.2'."""
        if self.clean:
            return "clean"
        images = f"{self.corruption}@{self.severity}" if self.corruption != CLEAN else ""
        labels = f"label_noise={self.label_noise:g}" if self.label_noise else ""
        return "+".join(filter(None, (images, labels)))

    def columns(self) -> dict[str, Any]:
        """The result-row columns of this condition."""
        return {"corruption": self.corruption, "severity": self.severity, "label_noise": self.label_noise}

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Condition:
        """The condition of a result row (strings as the csv module reads them; absent columns: clean)."""
        return cls(
            corruption=str(row.get("corruption") or CLEAN),
            severity=int(float(row.get("severity") or 0)),
            label_noise=float(row.get("label_noise") or 0),
        )


@dataclass(frozen=True)
class Robustness:
    """The conditions a protocol scores besides the clean one (protocol.corruptions, severities,
    label_noise, label_noise_mode); the default scores the clean condition only."""

    corruptions: tuple[str, ...] = ()
    severities: tuple[int, ...] = SEVERITY_LEVELS
    label_noise: tuple[float, ...] = (0.0,)
    label_noise_mode: str = "symmetric"

    def __post_init__(self) -> None:
        if self.corruptions and not self.severities:
            raise ValueError("protocol.corruptions needs protocol.severities (levels 1..5), got none")
        for name in self.corruptions:
            for severity in self.severities:
                check_corruption(name, severity)
        for rate in self.label_noise:
            check_label_noise(rate, self.label_noise_mode)

    @classmethod
    def of(cls, corruptions: Sequence[str] = (), severities: Sequence[int] = SEVERITY_LEVELS,
           label_noise: Sequence[float] = (0.0,), label_noise_mode: str = "symmetric") -> Robustness:  # fmt: skip
        """From the protocol's options (any sequences; duplicates dropped, order kept)."""
        rates = (float(r) if isinstance(r, int) and not isinstance(r, bool) else r for r in label_noise)
        return cls(unique(corruptions), unique(severities), unique(rates), label_noise_mode)

    def groups(self) -> list[list[Condition]]:
        """The conditions, grouped by the training they share: the clean labels with the clean and every
        corrupted query set, then one group per label-noise share above 0."""
        clean = [Condition()] + [Condition(c, s) for c in self.corruptions for s in self.severities]
        return [clean] + [[Condition(label_noise=r)] for r in self.label_noise if r > 0]

    def split_hash(self, base: str, condition: Condition) -> str:
        """The split hash of ``condition``'s tasks: ``base`` (the protocol's) for the clean condition, else
        a hash of it with the condition's parameters, so that rows of different conditions never pool."""
        if condition.clean:
            return base
        corruption = parameter(condition.corruption, condition.severity) if condition.corruption != CLEAN else None
        mode = self.label_noise_mode if condition.label_noise else None
        return content_hash(base, condition.name, corruption, mode)

    def seed(self, seed: int, key: str, condition: Condition, episode: int) -> int:
        """The seed of one task's corruption or flips: run seed, fold and tasks (``key``), condition, episode."""
        return derive_seed(seed, key, condition.name, episode)

    def training(self, task: Any, condition: Condition, seed: int) -> Any:
        """``task`` with ``condition.label_noise`` of its support labels, and of its val labels, flipped."""
        if not condition.label_noise:
            return task
        n_classes, generator = len(task.classes), seeded_generator(seed)
        flip = lambda labels: flip_labels(labels, condition.label_noise, n_classes, self.label_noise_mode, generator)  # noqa: E731
        support_labels = flip(task.support_labels)  # support first, then val: the order ``context`` flips in
        val = None if task.val is None else (task.val[0], flip(task.val[1]))
        return replace(task, support_labels=support_labels, val=val)

    def context(self, context: PrepareContext, condition: Condition, seed: int) -> PrepareContext:
        """``context`` with the flips ``training`` gives a task of the same ``seed`` in its base, then val,
        labels: where the base images are the tasks' support images, in order (the label-budget protocol),
        preparation sees the same flipped labels as ``adapt``."""
        if not condition.label_noise:
            return context
        generator = seeded_generator(seed)

        def flip(part: ImageData | None) -> ImageData | None:
            if part is None:
                return None
            return replace(part, labels=flip_labels(part.labels, condition.label_noise, part.n_classes, self.label_noise_mode, generator))

        return replace(context, base=flip(context.base), val=flip(context.val))

    def query(self, task: Any, condition: Condition, seed: int) -> torch.Tensor:
        """``task``'s query images, corrupted by ``condition`` (the same tensor when it corrupts none)."""
        if condition.corruption == CLEAN:
            return task.query
        return corrupt(task.query, condition.corruption, condition.severity, seeded_generator(seed))

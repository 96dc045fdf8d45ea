"""Supervised training on every base class at once: the pretraining stage of the transfer baselines.

A new head over all base classes is trained with the backbone by cross-entropy on batches of
labelled base images, then dropped; the backbone keeps what it learned. This is the
"pre-training" of Baseline / Baseline++ (Chen et al., "A Closer Look at Few-shot
Classification", ICLR 2019, https://arxiv.org/abs/1904.04232; Baseline++ with the cosine head)
and of RFS (Tian et al., "Rethinking Few-Shot Image Classification: a Good Embedding Is All You
Need?", ECCV 2020, https://arxiv.org/abs/2003.11539). The training loop is ``FineTune.fit``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from medfew.data.dataset import UNLABELED
from medfew.learners.backbone import BackboneLearner
from medfew.learners.base import PrepareContext
from medfew.learners.finetune import FineTune
from medfew.seeding import derive_seed, seeded_generator


@dataclass(frozen=True)
class BaseTraining:
    """How to train on the base classes (``BackboneLearner``'s stage 2, ``base_training``).

    Attributes:
        steps: AdamW steps (batches).
        batch_size: labelled base images per step, drawn without replacement pass after pass
            from a generator seeded by ``derive_seed(context.seed, "base_training")``.
        lr, weight_decay: AdamW on the backbone and the head.
        head: ``linear`` (Baseline, RFS) or ``cosine`` (Baseline++), over every base class.
        scale: the cosine head's scale.
        augment: batch augmentation of float [0, 1] images, or None.
        precision: autocast of the steps (see ``FineTune``).
    """

    steps: int = 1000
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 5e-4
    head: str = "linear"
    scale: float = 10.0
    augment: Callable[[Tensor], Tensor] | None = None
    precision: str = "auto"

    def __post_init__(self) -> None:
        if self.head not in ("linear", "cosine"):
            raise ValueError(f"base_training.head must be 'linear' or 'cosine', got '{self.head}'")
        if min(self.steps, self.batch_size) < 1:
            raise ValueError(f"base_training needs steps and batch_size >= 1, got {self.steps} and {self.batch_size}")

    def fit(self, learner: BackboneLearner, context: PrepareContext) -> None:
        """Train ``learner``'s backbone in place on ``context.base``'s labelled images."""
        base = context.base
        if base is None:
            raise ValueError(f"{type(learner).__name__}: base_training needs labelled base classes, but the context has none")
        labelled = base.subset(torch.nonzero(base.labels != UNLABELED).flatten())
        if len(labelled) < 2:
            raise ValueError(f"{base.name}: base_training needs at least 2 labelled images, got {len(labelled)}")
        trainer = FineTune(
            learner.require_backbone(), steps=self.steps, batch_size=self.batch_size, lr=self.lr,
            weight_decay=self.weight_decay, augment=self.augment, precision=self.precision,
            channels_last=False, head=self.head, scale=self.scale,
        )  # fmt: skip
        device = next(trainer.backbone.parameters()).device
        head = trainer.new_head(labelled.images, labelled.labels, base.n_classes).to(device)
        generator = seeded_generator(derive_seed(context.seed, "base_training"))
        trainer.fit(trainer.backbone, head, labelled.images, labelled.labels, None, None, generator)

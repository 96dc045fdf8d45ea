"""What every self-supervised method shares: a backbone, a loss over views, a recipe.

A method is one short module (backbone + head + criterion, after lightly's examples):
``forward(views, step, max_steps)`` takes the augmented views of one batch and returns
the loss. ``step`` counts optimiser steps from 0 and ``max_steps`` is the run's budget, so
every schedule inside a method (teacher momentum, DINO's teacher temperature) runs over
the budget whatever the pool size. Momentum methods (MoCo, BYOL, DINO) also keep an EMA teacher.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import torch
from lightly.models.utils import deactivate_requires_grad, update_momentum
from torch import Tensor, nn

from medfew.models import Backbone
from medfew.ssl.schedules import momentum_schedule


@dataclass(frozen=True)
class Recipe:
    """Optimisation of a method, for pools of a few hundred to a few thousand images.

    Attributes:
        optimizer: "sgd", "lars" or "adamw".
        lr: base learning rate for a batch of 256 (scaled linearly with the batch size).
        weight_decay: decay of weights (never of biases and norm parameters).
        warmup: linear warmup before the cosine decay, as a fraction of the budget's steps.
    """

    optimizer: str
    lr: float
    weight_decay: float
    warmup: float = 0.1


#: The momentum and predictor methods' recipe (MoCo, BYOL, SimSiam, DINO): SGD at lightly's CIFAR-10 benchmark
#: rate, 0.06 per 128 images. On a 1,600-image pool, lr 1.0 per 256 drifts below the random network in 1,000
#: steps (BENCHMARKS.md, "SSL on small pools").
MOMENTUM_SGD = Recipe(optimizer="sgd", lr=0.12, weight_decay=5e-4, warmup=0.1)


@dataclass(frozen=True)
class ViewSpec:
    """How many views a step needs: global views, and small-crop local views (multi-crop)."""

    n_global: int = 2
    n_local: int = 0
    local_scale: tuple[float, float] = (0.2, 0.5)


class SSLMethod(nn.Module, ABC):
    """Backbone + head + criterion. ``encoder`` is the network exported after training.

    ``constant_lr`` names submodules trained at their learning rate throughout (no warmup, no
    decay), e.g. SimSiam's predictor; ``lr_scale`` maps submodule names to a multiple of the base
    learning rate.
    """

    recipe: Recipe
    view_spec = ViewSpec()
    constant_lr: tuple[str, ...] = ()
    lr_scale: dict[str, float] = {}  # noqa: RUF012 (read only; a method sets its own in __init__)

    def __init__(self, backbone: Backbone) -> None:
        super().__init__()
        self.backbone = backbone

    @property
    def encoder(self) -> Backbone:
        return self.backbone

    @abstractmethod
    def forward(self, views: list[Tensor], step: int, max_steps: int) -> Tensor:
        """Loss (scalar) of one batch given its views, each (B, C, H, W) float in [0, 1]."""

    def fit_pool(self, n_images: int) -> None:
        """Adjust the settings that depend on the pool size, once before training (default: none)."""

    def on_after_backward(self, step: int, max_steps: int) -> None:
        """Adjust gradients before the optimizer step (default: nothing)."""


class MomentumMethod(SSLMethod):
    """A student (backbone + head) and its exponential-moving-average teacher.

    ``make_head`` builds the head twice (student and teacher, same weights): heads with
    weight normalisation cannot be deep-copied.

    The teacher momentum rises from ``momentum`` to 1 on a half cosine over the budget's steps
    (BYOL, Grill et al. 2020, https://arxiv.org/abs/2006.07733; also DINO and MoCo v3). The
    teacher averages roughly the last ``1 / (1 - momentum)`` student states: keep that well
    below the budget, or the teacher (DINO's export) stays near its random start.
    """

    def __init__(self, backbone: Backbone, make_head: Callable[[], nn.Module], momentum: float) -> None:
        super().__init__(backbone)
        self.head = make_head()
        self.momentum = momentum
        self.teacher_backbone = copy.deepcopy(backbone)
        self.teacher_head = make_head()
        self.teacher_head.load_state_dict(self.head.state_dict())
        deactivate_requires_grad(self.teacher_backbone)
        deactivate_requires_grad(self.teacher_head)

    def update_teacher(self, step: int, max_steps: int) -> None:
        momentum = momentum_schedule(step, max(max_steps, 1), self.momentum)
        update_momentum(self.backbone, self.teacher_backbone, momentum)
        update_momentum(self.head, self.teacher_head, momentum)

    def student(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(x))

    @torch.no_grad()
    def teacher(self, x: Tensor) -> Tensor:
        return self.teacher_head(self.teacher_backbone(x))

"""What every self-supervised method shares: a backbone, a loss over views, a recipe.

A method is one short module (backbone + head + criterion, after lightly's examples):
``forward(views, step, max_steps)`` takes the augmented views of one batch and returns
the loss. Momentum methods (MoCo, BYOL, DINO) also keep an EMA teacher.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import torch
from lightly.models.utils import deactivate_requires_grad, update_momentum
from lightly.utils.scheduler import cosine_schedule
from torch import Tensor, nn

from medfew.models import Backbone


@dataclass(frozen=True)
class Recipe:
    """Optimisation as the method's paper states it.

    Attributes:
        optimizer: "sgd", "lars" or "adamw".
        lr: base learning rate for a batch of 256 (scaled linearly with the batch size).
        weight_decay: decay of weights (never of biases and norm parameters).
        warmup_epochs: linear warmup before the cosine decay.
    """

    optimizer: str
    lr: float
    weight_decay: float
    warmup_epochs: int = 10


@dataclass(frozen=True)
class ViewSpec:
    """How many views a step needs: global views, and small-crop local views (multi-crop)."""

    n_global: int = 2
    n_local: int = 0
    local_scale: tuple[float, float] = (0.2, 0.5)


class SSLMethod(nn.Module, ABC):
    """Backbone + head + criterion. ``encoder`` is the network exported after training."""

    recipe: Recipe
    view_spec = ViewSpec()

    def __init__(self, backbone: Backbone) -> None:
        super().__init__()
        self.backbone = backbone

    @property
    def encoder(self) -> Backbone:
        return self.backbone

    @abstractmethod
    def forward(self, views: list[Tensor], step: int, max_steps: int) -> Tensor:
        """Loss (scalar) of one batch given its views, each (B, C, H, W) float in [0, 1]."""

    def on_after_backward(self, epoch: int) -> None:
        """Adjust gradients before the optimizer step (default: nothing)."""


class MomentumMethod(SSLMethod):
    """A student (backbone + head) and its exponential-moving-average teacher.

    ``make_head`` builds the head twice (student and teacher, same weights): heads with
    weight normalisation cannot be deep-copied.

    The teacher momentum follows a cosine schedule from ``momentum`` to 1 (BYOL, Grill et
    al. 2020, https://arxiv.org/abs/2006.07733; also used by DINO and MoCo v3).
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
        momentum = cosine_schedule(step, max(max_steps, 1), self.momentum, 1.0)
        update_momentum(self.backbone, self.teacher_backbone, momentum)
        update_momentum(self.head, self.teacher_head, momentum)

    def student(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(x))

    @torch.no_grad()
    def teacher(self, x: Tensor) -> Tensor:
        return self.teacher_head(self.teacher_backbone(x))

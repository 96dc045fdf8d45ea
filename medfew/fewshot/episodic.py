"""What every meta-learner shares: class logits for a query set, and episodic meta-training."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from medfew.fewshot.meta_training import MetaTraining, meta_train
from medfew.learners.base import Learner, PrepareContext


def build_backbone(backbone: nn.Module | Callable[[], nn.Module]) -> nn.Module:
    """A backbone module, or the one a factory (a Hydra partial of ``create_backbone``) builds."""
    return backbone if isinstance(backbone, nn.Module) else backbone()


def episode_ways(support_labels: Tensor, limit: int | None = None) -> int:
    """n_way of a support set whose labels are 0..n_way-1; raise if it exceeds ``limit``."""
    n_way = int(support_labels.max()) + 1
    if limit is not None and n_way > limit:
        raise ValueError(f"the support set has {n_way} classes but this learner's head has {limit} outputs (n_way)")
    return n_way


class EpisodicLearner(Learner):
    """A learner meta-trained on base-class episodes (``prepare``) that scores queries by logits.

    Subclasses implement ``adapt`` and ``logits``; while the module is in training mode and
    autograd is on, both keep the graph to the meta-parameters (meta-training); otherwise
    they run without it (evaluation), so evaluating many episodes does not grow memory.

    Args:
        meta_train_steps: meta-iterations run by ``prepare``; 0 means no meta-training.
        meta_training: episode shapes, meta-batch, optimiser and trainer settings.
    """

    def __init__(self, meta_train_steps: int = 0, meta_training: MetaTraining | None = None) -> None:
        super().__init__()
        if meta_train_steps < 0:
            raise ValueError(f"meta_train_steps must be >= 0, got {meta_train_steps}")
        self.meta_train_steps = meta_train_steps
        self.meta_training = meta_training or MetaTraining()

    @abstractmethod
    def logits(self, state: Any, query: Tensor) -> Tensor:
        """(n_query, n_way) unnormalised class scores of ``query`` under an adapted ``state``."""

    def predict(self, state: Any, query: Tensor) -> Tensor:
        return self.logits(state, query).softmax(dim=-1)

    def meta_training_graph(self) -> bool:
        """True while meta-training: training mode with autograd on."""
        return self.training and torch.is_grad_enabled()

    def prepare(self, context: PrepareContext) -> None:
        """Meta-train on ``context.base`` episodes (best on ``context.val``), then switch to eval mode."""
        if self.meta_train_steps > 0:
            if context.base is None:
                raise ValueError(
                    f"{type(self).__name__} meta-trains on base classes but the context has none; "
                    "give PrepareContext.base or set meta_train_steps=0"
                )
            meta_train(self, context, self.meta_training, self.meta_train_steps)
        self.eval()


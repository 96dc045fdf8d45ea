"""Prototypical Networks.

Snell, Swersky & Zemel, "Prototypical Networks for Few-shot Learning", NeurIPS 2017,
https://arxiv.org/abs/1703.05175.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from medfew.fewshot.episodic import EpisodicLearner, build_backbone, episode_ways
from medfew.fewshot.meta_training import MetaTraining

DISTANCES = ("euclidean", "cosine")


class ProtoNet(EpisodicLearner):
    """Class prototype = mean support embedding; a query scores -distance to each prototype.

    Args:
        backbone: a Backbone, or a factory building one (Conv-4, timm, an SSL export).
        distance: "euclidean" (squared, as in the paper) or "cosine" (times ``scale``).
        scale: temperature multiplying cosine similarities (ignored for euclidean).
        meta_train_steps: 0 means plain prototypes on the given backbone.
        meta_training: episodic training settings.
    """

    def __init__(
        self,
        backbone: nn.Module | Callable[[], nn.Module],
        distance: str = "euclidean",
        scale: float = 10.0,
        meta_train_steps: int = 0,
        meta_training: MetaTraining | None = None,
    ) -> None:
        super().__init__(meta_train_steps, meta_training)
        if distance not in DISTANCES:
            raise ValueError(f"unknown distance '{distance}'; choose one of {DISTANCES}")
        self.backbone = build_backbone(backbone)
        self.distance = distance
        self.scale = scale

    def adapt(self, support: Tensor, support_labels: Tensor, val: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """(n_way, D) prototypes: the mean embedding of each class's support images."""
        with torch.set_grad_enabled(self.meta_training_graph()):
            features = self.backbone(support)
            n_way = episode_ways(support_labels)
            sums = features.new_zeros(n_way, features.shape[-1]).index_add(0, support_labels, features)
            counts = torch.bincount(support_labels, minlength=n_way).unsqueeze(1)
            return sums / counts

    def logits(self, prototypes: Tensor, query: Tensor) -> Tensor:
        """(n_query, n_way): -||f(x) - c_k||^2, or scale * cos(f(x), c_k)."""
        with torch.set_grad_enabled(self.meta_training_graph()):
            features = self.backbone(query)
            if self.distance == "cosine":
                return self.scale * F.normalize(features, dim=-1) @ F.normalize(prototypes, dim=-1).T
            return -(features.unsqueeze(1) - prototypes.unsqueeze(0)).pow(2).sum(dim=-1)

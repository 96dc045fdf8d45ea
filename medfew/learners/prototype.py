"""Nearest-centroid (prototype) classifier on frozen features or raw pixels.

Mensink et al., "Distance-Based Image Classification: Generalizing to New Classes at
Near-Zero Cost", TPAMI 2013; the prototype rule of Snell et al., "Prototypical Networks
for Few-shot Learning", NeurIPS 2017, https://arxiv.org/abs/1703.05175, without
meta-training; L2-normalised features as in Wang et al., "SimpleShot", 2019,
https://arxiv.org/abs/1911.04623.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from medfew.learners.backbone import BackboneFactory, BackboneLearner, Pretrain


class NearestCentroid(BackboneLearner):
    """p(y = k | x) = softmax_k(-scale * ||f(x) - c_k||^2), c_k the mean support feature of class k.

    Args:
        normalize: L2-normalise features first (then distances lie in [0, 4]).
        scale: inverse temperature of the softmax over negative squared distances.
    """

    def __init__(
        self,
        backbone: BackboneFactory | None = None,
        pretrain: Pretrain | None = None,
        normalize: bool = True,
        scale: float = 10.0,
        batch_size: int = 256,
    ) -> None:
        super().__init__(backbone, pretrain, batch_size)
        self.normalize = normalize
        self.scale = scale

    def features(self, images: Tensor) -> Tensor:
        features = self.embed(images)
        return F.normalize(features, dim=1) if self.normalize else features

    def adapt(self, support: Tensor, support_labels: Tensor, val: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """(n_way, D) class prototypes."""
        features = self.features(support)
        n_way = int(support_labels.max()) + 1
        sums = torch.zeros(n_way, features.shape[1], device=features.device).index_add_(0, support_labels, features)
        return sums / torch.bincount(support_labels, minlength=n_way).unsqueeze(1)

    def predict(self, state: Tensor, query: Tensor) -> Tensor:
        distances = torch.cdist(self.features(query), state).pow(2)
        return torch.softmax(-self.scale * distances, dim=1)

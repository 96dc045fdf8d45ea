"""Nearest-centroid (prototype) classifier on frozen features or raw pixels.

Mensink et al., "Distance-Based Image Classification: Generalizing to New Classes at
Near-Zero Cost", TPAMI 2013; the prototype rule of Snell et al., "Prototypical Networks
for Few-shot Learning", NeurIPS 2017, https://arxiv.org/abs/1703.05175, without
meta-training; L2-normalised features as in Wang et al., "SimpleShot", 2019,
https://arxiv.org/abs/1911.04623. The prototype maths is ``medfew.learners.classifiers``'.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from medfew.learners.backbone import BackboneArg, BackboneLearner, BaseTrainer, MetaTrainer, Pretrain
from medfew.learners.classifiers import class_means, prototype_logits


class NearestCentroid(BackboneLearner):
    """p(y = k | x) = softmax_k(-scale * ||f(x) - c_k||^2), c_k the mean support feature of class k.

    Args:
        normalize: L2-normalise features first (then distances lie in [0, 4]).
        scale: inverse temperature of the softmax over negative squared distances.
        backbone, pretrain, base_training, meta_train_steps, meta_training, batch_size: see ``BackboneLearner``.
    """

    def __init__(
        self,
        backbone: BackboneArg = None,
        pretrain: Pretrain | None = None,
        normalize: bool = True,
        scale: float = 10.0,
        batch_size: int = 256,
        base_training: BaseTrainer | None = None,
        meta_train_steps: int = 0,
        meta_training: MetaTrainer | None = None,
    ) -> None:
        super().__init__(backbone, pretrain, base_training, meta_train_steps, meta_training, batch_size)
        self.normalize = normalize
        self.scale = scale

    def frozen_features(self, images: Tensor) -> Tensor:
        features = self.embed(images)
        return F.normalize(features, dim=1) if self.normalize else features

    def adapt(self, support: Tensor, support_labels: Tensor, val: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """(n_way, D) class prototypes."""
        return class_means(self.frozen_features(support), support_labels)

    def predict(self, state: Tensor, query: Tensor) -> Tensor:
        return torch.softmax(prototype_logits(self.frozen_features(query), state, "euclidean", self.scale), dim=1)

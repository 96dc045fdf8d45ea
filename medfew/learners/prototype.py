"""Nearest-centroid (prototype) classifier on frozen features or raw pixels.

Mensink et al., "Distance-Based Image Classification: Generalizing to New Classes at
Near-Zero Cost", TPAMI 2013; the prototype rule of Snell et al., "Prototypical Networks
for Few-shot Learning", NeurIPS 2017, https://arxiv.org/abs/1703.05175, without
meta-training; features L2-normalised (L2N) or centred on the support set, then L2-normalised
(CL2N), as in Wang et al., "SimpleShot", 2019, https://arxiv.org/abs/1911.04623. The
prototype maths is ``medfew.learners.classifiers``'.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from medfew.learners.backbone import BackboneArg, BackboneLearner, BaseTrainer, MetaTrainer, Pretrain
from medfew.learners.classifiers import class_means, prototype_logits


@dataclass(frozen=True)
class Centroids:
    """A support set's (n_way, D) class prototypes and the (D,) centre subtracted before normalising."""

    prototypes: Tensor
    centre: Tensor


class NearestCentroid(BackboneLearner):
    """p(y = k | x) = softmax_k(-scale * ||g(f(x)) - c_k||^2), c_k the mean of g(f(s)) over the support images s of class k.

    g is the identity, L2 normalisation (``normalize``), or centring on the support set's mean
    class mean followed by L2 normalisation (``center`` and ``normalize``). Centring keeps what all
    images share in intensity from dominating the direction: L2 normalisation alone maps a dark and
    a bright flat image to the same vector, so raw pixels separable by brightness score chance.

    Args:
        normalize: L2-normalise features (then distances lie in [0, 4]).
        center: subtract the mean of the support's class means first (SimpleShot's CL2N); the
            mean of class means, so an imbalanced support set does not pull it to its largest class.
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
        center: bool = False,
    ) -> None:
        super().__init__(backbone, pretrain, base_training, meta_train_steps, meta_training, batch_size)
        self.normalize, self.center, self.scale = normalize, center, scale

    def transform(self, features: Tensor, centre: Tensor) -> Tensor:
        features = features - centre
        return F.normalize(features, dim=1) if self.normalize else features

    def adapt(self, support: Tensor, support_labels: Tensor, val: tuple[Tensor, Tensor] | None = None) -> Centroids:
        features = self.embed(support)
        centre = class_means(features, support_labels).mean(dim=0) if self.center else features.new_zeros(features.shape[1])
        return Centroids(class_means(self.transform(features, centre), support_labels), centre)

    def predict(self, state: Centroids, query: Tensor) -> Tensor:
        features = self.transform(self.embed(query), state.centre)
        return torch.softmax(prototype_logits(features, state.prototypes, "euclidean", self.scale), dim=1)

"""Classifiers on features, in one place: prototypes (class means -> distance logits), the cosine
classifier of Baseline++, and the trainable head that starts as the prototype classifier.

Prototypes: Snell et al., "Prototypical Networks for Few-shot Learning", NeurIPS 2017,
https://arxiv.org/abs/1703.05175. Cosine classifier: Chen et al., "A Closer Look at Few-shot
Classification", ICLR 2019, https://arxiv.org/abs/1904.04232. Prototype-initialised head:
Triantafillou et al., "Meta-Dataset", ICLR 2020, https://arxiv.org/abs/1903.03096 (Proto-MAML's
output layer), used here for the fine-tuning stage of P>M>F (Hu et al., CVPR 2022).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from medfew.learners.base import support_ways

DISTANCES = ("euclidean", "cosine")


def check_distance(distance: str) -> str:
    if distance not in DISTANCES:
        raise ValueError(f"unknown distance '{distance}'; choose one of {DISTANCES}")
    return distance


def protonet_scale(distance: str, scale: float) -> float:
    """ProtoNet's convention: ``scale`` multiplies cosine similarities; squared Euclidean distances stay
    unscaled (the paper's rule), so a config's ``scale`` is ignored for euclidean."""
    return scale if check_distance(distance) == "cosine" else 1.0


def class_means(features: Tensor, labels: Tensor, n_way: int | None = None) -> Tensor:
    """(n_way, D) mean of each class's (N, D) features; labels 0..n_way-1, every class present.

    Differentiable in ``features`` (meta-training back-propagates through the prototypes).
    """
    n_way = support_ways(labels) if n_way is None else n_way
    sums = features.new_zeros(n_way, features.shape[-1]).index_add(0, labels, features)
    return sums / torch.bincount(labels, minlength=n_way).unsqueeze(1)


def prototype_logits(features: Tensor, prototypes: Tensor, distance: str = "euclidean", scale: float = 1.0) -> Tensor:
    """(n_query, n_way) logits of (n_query, D) features against (n_way, D) prototypes:
    ``-scale * ||f - c_k||^2`` (euclidean) or ``scale * cos(f, c_k)`` (cosine)."""
    if check_distance(distance) == "cosine":
        return scale * F.normalize(features, dim=-1) @ F.normalize(prototypes, dim=-1).T
    return -scale * (features.unsqueeze(1) - prototypes.unsqueeze(0)).pow(2).sum(dim=-1)


class CosineClassifier(nn.Module):
    """(B, D) features -> (B, n_way) logits ``scale * cos(f, w_k)``: Baseline++'s classifier.

    The weight rows are class directions; a fixed ``scale`` (inverse temperature) lets the
    softmax sharpen, as cosines alone lie in [-1, 1]. (The authors' code reparameterises the
    rows by weight normalisation and uses scale 2; pure cosine with a larger scale is the
    paper's definition and that of most re-implementations.)
    """

    def __init__(self, in_features: int, n_way: int, scale: float = 10.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_way, in_features))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # nn.Linear's initialisation
        self.scale = scale

    def forward(self, features: Tensor) -> Tensor:
        return prototype_logits(features, self.weight, "cosine", self.scale)


def prototype_head(prototypes: Tensor, distance: str = "euclidean", scale: float = 1.0) -> nn.Module:
    """A trainable head whose logits start as ``prototype_logits(f, prototypes, distance, scale)``
    up to a constant per row, so its softmax starts as the prototype classifier's.

    cosine: a ``CosineClassifier`` with rows = prototypes (equal logits). euclidean: a linear
    layer with ``W_k = 2 scale c_k`` and ``b_k = -scale ||c_k||^2``, whose logits are
    ``-scale ||f - c_k||^2 + scale ||f||^2``.
    """
    n_way, dim = prototypes.shape
    prototypes = prototypes.detach()
    if check_distance(distance) == "cosine":
        head = CosineClassifier(dim, n_way, scale)
        head.weight.data.copy_(prototypes)
        return head
    linear = nn.Linear(dim, n_way)
    linear.weight.data.copy_(2 * scale * prototypes)
    linear.bias.data.copy_(-scale * prototypes.pow(2).sum(dim=1))
    return linear

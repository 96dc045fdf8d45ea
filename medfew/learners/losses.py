"""Training losses of the fine-tuning learners: cross-entropy (optionally label-smoothed) and the
noise-robust generalised cross-entropy.

Generalised cross-entropy: Zhang & Sabuncu, "Generalized Cross Entropy Loss for Training Deep
Neural Networks with Noisy Labels", NeurIPS 2018, https://arxiv.org/abs/1805.07836. Label
smoothing: Szegedy et al., "Rethinking the Inception Architecture for Computer Vision", CVPR 2016,
https://arxiv.org/abs/1512.00567 (its benefit under label noise: Lukasik et al., ICML 2020).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

LOSSES = ("ce", "gce")


def check_loss(loss: str, label_smoothing: float, q: float) -> None:
    """Raise naming the value when the loss, its smoothing or its q is out of range."""
    if loss not in LOSSES:
        raise ValueError(f"unknown loss '{loss}'; choose {' or '.join(LOSSES)}")
    if not 0 <= label_smoothing < 1:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    if loss == "gce" and label_smoothing:
        raise ValueError(f"label_smoothing ({label_smoothing}) applies to loss=ce; generalised cross-entropy takes none")
    if not 0 < q <= 1:
        raise ValueError(f"gce_q must be in (0, 1] (towards 0: cross-entropy; 1: mean absolute error), got {q}")


def generalized_cross_entropy(logits: Tensor, labels: Tensor, q: float = 0.7, weight: Tensor | None = None) -> Tensor:
    """Mean of (1 - p_y^q) / q over (N, C) ``logits`` and (N,) ``labels``, with per-class ``weight`` as
    ``F.cross_entropy`` weighs (sum of weighted losses / sum of weights). q -> 0 gives cross-entropy,
    q = 1 the mean absolute error of the probabilities, which ignores how wrong a flipped label is."""
    probability = F.softmax(logits.float(), dim=1).gather(1, labels[:, None]).squeeze(1).clamp_min(1e-7)
    losses = (1 - probability**q) / q
    if weight is None:
        return losses.mean()
    weights = weight[labels]
    return (weights * losses).sum() / weights.sum()


def classification_loss(
    logits: Tensor, labels: Tensor, loss: str = "ce", weight: Tensor | None = None, label_smoothing: float = 0.0, q: float = 0.7
) -> Tensor:
    """``loss`` (ce or gce) of (N, C) ``logits`` against (N,) ``labels``."""
    if loss == "gce":
        return generalized_cross_entropy(logits, labels, q, weight)
    return F.cross_entropy(logits, labels, weight=weight, label_smoothing=label_smoothing)

"""Seeded label flips, to measure how learners bear mislabelled training images.

Symmetric noise moves a label to any other class with equal chance; pairwise noise moves class k
to class k + 1 (mod classes), the "pair flipping" of Han et al., "Co-teaching: Robust Training of
Deep Neural Networks with Extremely Noisy Labels", NeurIPS 2018, https://arxiv.org/abs/1804.06872.
"""

from __future__ import annotations

import torch
from torch import Tensor

MODES = ("symmetric", "pairwise")


def check_label_noise(rate: float, mode: str) -> None:
    """Raise naming the value when ``rate`` is not a share in [0, 1) or ``mode`` is unknown."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
        raise ValueError(f"label noise must be a share of the training labels in [0, 1), got {rate!r}")
    if mode not in MODES:
        raise ValueError(f"unknown label noise mode '{mode}'; choose {' or '.join(MODES)}")


def flip_labels(labels: Tensor, rate: float, n_classes: int, mode: str = "symmetric", generator: torch.Generator | None = None) -> Tensor:
    """A copy of (N,) ``labels`` with ``round(rate * N)`` of them moved to another class.

    Images flip in a seeded random order (``generator``, on the CPU); one whose flip would leave its
    class without any label is passed over for the next, so every class keeps an image (a learner
    needs each class in its support set). Fewer flips happen only when no other image can flip.
    """
    check_label_noise(rate, mode)
    if n_classes < 2:
        raise ValueError(f"label noise needs 2 classes or more, got {n_classes}")
    flipped = labels.clone().cpu()
    wanted = round(rate * len(labels))
    if wanted == 0:
        return flipped.to(labels.device)
    counts = torch.bincount(flipped, minlength=n_classes)
    order = torch.randperm(len(labels), generator=generator)
    shifts = torch.randint(1, n_classes, (len(labels),), generator=generator) if mode == "symmetric" else torch.ones(len(labels), dtype=torch.long)
    done = 0
    for i in order.tolist():
        old = int(flipped[i])
        if counts[old] < 2:
            continue
        new = (old + int(shifts[i])) % n_classes
        flipped[i], done = new, done + 1
        counts[old] -= 1
        counts[new] += 1
        if done == wanted:
            break
    return flipped.to(labels.device)

"""Classification metrics of one task, computed by torchmetrics from predicted probabilities."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics.functional.classification import (
    binary_auroc,
    multiclass_accuracy,
    multiclass_auroc,
    multiclass_calibration_error,
    multiclass_confusion_matrix,
    multiclass_f1_score,
    multiclass_recall,
)

METRICS = ("acc", "bal_acc", "macro_f1", "auroc", "ece")
LOWER_IS_BETTER = frozenset({"ece"})


def check_probabilities(probs: Tensor, n_query: int, n_way: int, learner: str = "learner") -> None:
    """Raise unless ``probs`` is an (n_query, n_way) matrix of finite rows summing to one."""
    if probs.shape != (n_query, n_way):
        raise ValueError(f"{learner} returned probabilities of shape {tuple(probs.shape)}; expected ({n_query}, {n_way})")
    if not torch.isfinite(probs).all() or (probs < 0).any():
        raise ValueError(f"{learner} returned negative or non-finite probabilities")
    sums = probs.sum(dim=1)
    if not torch.allclose(sums, torch.ones_like(sums), atol=1e-3):
        raise ValueError(f"{learner} returned probability rows summing to {sums.min():.4f}..{sums.max():.4f}, not 1")


def classification_metrics(probs: Tensor, labels: Tensor, n_bins: int = 15) -> dict[str, float]:
    """Accuracy, balanced accuracy (macro recall), macro-F1, AUROC (one-vs-rest) and ECE.

    Args:
        probs: (n, n_way) class probabilities.
        labels: (n,) int64 in 0..n_way-1.
        n_bins: equal-width confidence bins of the expected calibration error
            (Guo et al., "On Calibration of Modern Neural Networks", ICML 2017).

    Binary tasks use the AUROC of class 1's probability (equal to the one-vs-rest macro
    AUROC for two classes); AUROC is NaN when ``labels`` hold a single class.
    """
    probs, labels = probs.detach().float().cpu(), labels.detach().cpu()
    n_way = probs.shape[1]
    kwargs = dict(num_classes=n_way, validate_args=False)
    if len(labels.unique()) < 2:
        auroc = float("nan")
    elif n_way == 2:
        auroc = binary_auroc(probs[:, 1], labels).item()
    else:
        auroc = multiclass_auroc(probs, labels, average="macro", **kwargs).item()
    return {
        "acc": multiclass_accuracy(probs, labels, average="micro", **kwargs).item(),
        "bal_acc": multiclass_recall(probs, labels, average="macro", **kwargs).item(),
        "macro_f1": multiclass_f1_score(probs, labels, average="macro", **kwargs).item(),
        "auroc": auroc,
        "ece": multiclass_calibration_error(probs, labels, n_bins=n_bins, norm="l1", **kwargs).item(),
    }


def per_class_accuracy(probs: Tensor, labels: Tensor) -> Tensor:
    """(n_way,) accuracy on the images of each true class (NaN for an absent class)."""
    matrix = confusion_matrix(probs, labels).float()
    return matrix.diagonal() / matrix.sum(dim=1)


def confusion_matrix(probs: Tensor, labels: Tensor) -> Tensor:
    """(n_way, n_way) counts: row = true class, column = predicted class (argmax)."""
    probs, labels = probs.detach().float().cpu(), labels.detach().cpu()
    return multiclass_confusion_matrix(probs, labels, num_classes=probs.shape[1], validate_args=False)

"""Classification metrics of one task, computed by torchmetrics from predicted probabilities.

Balanced accuracy, macro-F1 and AUROC average over the classes present in the evaluated
labels (``n_present`` of them): a class with no image has no recall and no ROC curve, and
counting it as 0 would lower the score of a perfect classifier. A metric that cannot be
computed is NaN, and ``why_undefined`` says why.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics.functional.classification import (
    binary_auroc,
    multiclass_accuracy,
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


def classification_metrics(probs: Tensor, labels: Tensor, n_bins: int = 15) -> dict[str, float | int]:
    """Accuracy, balanced accuracy (macro recall), macro-F1, AUROC (one-vs-rest), ECE and ``n_present``.

    Args:
        probs: (n, n_way) class probabilities, n >= 1.
        labels: (n,) int64 in 0..n_way-1.
        n_bins: equal-width confidence bins of the expected calibration error
            (Guo et al., "On Calibration of Modern Neural Networks", ICML 2017).

    Macro averages run over the ``n_present`` classes found in ``labels``; AUROC is the mean
    one-vs-rest AUROC of those classes (for two classes, the binary AUROC) and NaN when
    fewer than two are present.
    """
    probs, labels = checked(probs, labels)
    n_way = probs.shape[1]
    present = labels.unique()
    kwargs = dict(num_classes=n_way, validate_args=False)
    recall = multiclass_recall(probs, labels, average="none", **kwargs)
    f1 = multiclass_f1_score(probs, labels, average="none", **kwargs)
    return {
        "acc": multiclass_accuracy(probs, labels, average="micro", **kwargs).item(),
        "bal_acc": recall[present].mean().item(),
        "macro_f1": f1[present].mean().item(),
        "auroc": present_auroc(probs, labels, present),
        "ece": multiclass_calibration_error(probs, labels, n_bins=n_bins, norm="l1", **kwargs).item(),
        "n_present": len(present),
    }


def present_auroc(probs: Tensor, labels: Tensor, present: Tensor) -> float:
    """Mean one-vs-rest AUROC over the ``present`` classes; NaN with fewer than two."""
    if len(present) < 2:
        return float("nan")
    return torch.stack([binary_auroc(probs[:, c], (labels == c).long(), validate_args=False) for c in present]).mean().item()


def why_undefined(metric: str, n_present: int | float) -> str:
    """Why ``metric`` is NaN on a task whose labels hold ``n_present`` classes."""
    if metric == "auroc" and n_present == 1:
        return "one class in the evaluated labels: AUROC needs two"
    return "NaN in the results (cause not recorded)"


def checked(probs: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """``probs`` and ``labels`` on the CPU, after checking their shapes and label range."""
    probs, labels = probs.detach().float().cpu(), labels.detach().long().cpu()
    if probs.ndim != 2 or labels.shape != probs.shape[:1] or len(labels) == 0:
        raise ValueError(f"metrics need (n, n_way) probabilities and (n,) labels, n >= 1; got {tuple(probs.shape)} and {tuple(labels.shape)}")
    if labels.min() < 0 or labels.max() >= probs.shape[1]:
        raise ValueError(f"labels {labels.min()}..{labels.max()} outside 0..{probs.shape[1] - 1} (n_way = {probs.shape[1]})")
    return probs, labels


def per_class_accuracy(probs: Tensor, labels: Tensor) -> Tensor:
    """(n_way,) accuracy on the images of each true class (NaN for an absent class)."""
    matrix = confusion_matrix(probs, labels).float()
    return matrix.diagonal() / matrix.sum(dim=1)


def confusion_matrix(probs: Tensor, labels: Tensor) -> Tensor:
    """(n_way, n_way) counts: row = true class, column = predicted class (argmax)."""
    probs, labels = checked(probs, labels)
    return multiclass_confusion_matrix(probs, labels, num_classes=probs.shape[1], validate_args=False)

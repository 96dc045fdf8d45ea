"""kNN accuracy of a backbone's features: the online monitor of SSL pretraining.

Weighted kNN on L2-normalised features (Wu et al., "Unsupervised Feature Learning via
Non-Parametric Instance Discrimination", CVPR 2018, https://arxiv.org/abs/1805.01978),
using lightly's ``knn_predict``.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from lightly.utils.benchmarking import knn_predict
from torch import Tensor, nn

from medfew.data.dataset import UNLABELED, ImageData
from medfew.data.splits import label_budget


@torch.no_grad()
def embed(backbone: nn.Module, images: Tensor, batch_size: int = 256) -> Tensor:
    """uint8 (N, C, H, W) -> L2-normalised (N, D) features, backbone in eval mode."""
    was_training = backbone.training
    backbone.eval()
    device = next(backbone.parameters()).device
    features = [backbone(chunk.to(device).float().div_(255)).float() for chunk in images.split(batch_size)]
    backbone.train(was_training)
    return F.normalize(torch.cat(features), dim=1)


def knn_accuracy(
    backbone: nn.Module, bank: ImageData, query: ImageData, k: int = 20, temperature: float = 0.1
) -> float:
    """Top-1 accuracy on ``query`` of a weighted kNN over ``bank``'s labelled features."""
    bank_features = embed(backbone, bank.images)
    query_features = embed(backbone, query.images)
    labels = bank.labels.to(bank_features.device)
    predicted = knn_predict(
        query_features, bank_features.T, labels, bank.n_classes, knn_k=min(k, len(bank)), knn_t=temperature
    )[:, 0]
    return (predicted.cpu() == query.labels).float().mean().item()


def halves(data: ImageData) -> tuple[ImageData, ImageData]:
    """Split labelled data into a kNN bank and a query set, alternating within each class."""
    labelled = torch.nonzero(data.labels != UNLABELED).flatten()
    if len(labelled) < 2:
        raise ValueError(f"{data.name}: the kNN monitor needs at least 2 labelled images, got {len(labelled)}")
    order = labelled[torch.argsort(data.labels[labelled], stable=True)]
    return data.subset(order[0::2]), data.subset(order[1::2])


def pool_and_monitor(data: ImageData, monitor_per_class: int, seed: int = 0) -> tuple[ImageData, ImageData]:
    """The unlabeled pretraining pool and a small labelled monitor split, disjoint.

    With official splits, the pool is the train split and the monitor comes from the val
    split (else test); without splits, ``monitor_per_class`` images per class are held out.
    """
    splits = data.split_names()
    if "train" in splits and len(splits) > 1:
        source = data.select_split("val" if "val" in splits else next(s for s in splits if s != "train"))
        monitor = source.subset(label_budget(source, monitor_per_class, seed=seed).labelled)
        return data.select_split("train").unlabeled(), monitor
    budget = label_budget(data, monitor_per_class, seed=seed)
    return data.subset(budget.unlabeled).unlabeled(), data.subset(budget.labelled)


class KnnMonitor(pl.Callback):
    """Log kNN accuracy (``monitor/knn_acc``) of ``module.method.encoder`` at the start and after
    every epoch, and keep the values in ``<csv_path>`` (one row per epoch; -1 = before training)."""

    def __init__(self, monitor: ImageData, csv_path: Path, k: int = 20) -> None:
        self.bank, self.query = halves(monitor)
        self.csv_path = Path(csv_path)
        self.k = k

    def measure(self, trainer: pl.Trainer, module: pl.LightningModule, epoch: int) -> None:
        accuracy = knn_accuracy(module.method.encoder, self.bank, self.query, self.k)
        if epoch >= 0:
            module.log("monitor/knn_acc", accuracy, sync_dist=True)
        if trainer.is_global_zero:
            self.write(epoch, accuracy)

    def write(self, epoch: int, accuracy: float) -> None:
        rows = {}
        if self.csv_path.exists():
            with self.csv_path.open() as f:
                rows = {int(r["epoch"]): float(r["knn_acc"]) for r in csv.DictReader(f)}
        rows[epoch] = accuracy
        self.csv_path.parent.mkdir(parents=True, exist_ok=True)
        with self.csv_path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["epoch", "knn_acc"])
            writer.writerows(sorted(rows.items()))

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if trainer.current_epoch == 0:
            self.measure(trainer, module, -1)

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.measure(trainer, module, trainer.current_epoch)

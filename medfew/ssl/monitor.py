"""kNN accuracy and spread of a backbone's features: the online monitor of SSL pretraining.

Weighted kNN on L2-normalised features (Wu et al., "Unsupervised Feature Learning via
Non-Parametric Instance Discrimination", CVPR 2018, https://arxiv.org/abs/1805.01978),
using lightly's ``knn_predict``; the spread (``embedding_std``) is the collapse signal.
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
from medfew.models.features import embed as embed_raw


@torch.no_grad()
def embed(backbone: nn.Module, images: Tensor, batch_size: int = 256) -> Tensor:
    """uint8 (N, C, H, W) -> L2-normalised (N, D) features, backbone in eval mode."""
    return F.normalize(embed_raw(backbone, images, batch_size), dim=1)


def embedding_std(features: Tensor) -> float:
    """Per-dimension standard deviation of L2-normalised (N, D) features, averaged over D.

    The collapse signal of SimSiam (Chen & He 2021, https://arxiv.org/abs/2011.10566, Sec. 4.1):
    about ``1 / sqrt(D)`` when the features spread over the sphere, 0 when every image maps to
    one point. Features sharing a large common direction (a random ReLU network's) read low too.
    """
    if len(features) < 2:
        raise ValueError(f"the spread of features needs at least 2 rows, got {len(features)}")
    return F.normalize(features.float(), dim=1).std(dim=0).mean().item()


def knn_accuracy(
    backbone: nn.Module, bank: ImageData, query: ImageData, k: int = 20, temperature: float = 0.1
) -> float:
    """Top-1 accuracy on ``query`` of a weighted kNN over ``bank``'s labelled features."""
    return knn_scores(embed(backbone, bank.images), bank, embed(backbone, query.images), query, k, temperature)


def knn_scores(
    bank_features: Tensor, bank: ImageData, query_features: Tensor, query: ImageData, k: int = 20, temperature: float = 0.1
) -> float:
    """``knn_accuracy`` on features already computed (L2-normalised, (N, D))."""
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


def pool_and_monitor(
    data: ImageData, monitor_per_class: int, seed: int = 0, keep_labels: bool = False
) -> tuple[ImageData, ImageData]:
    """The unlabeled pretraining pool and a small labelled monitor split, disjoint.

    With official splits, the pool is the train split and the monitor comes from the val
    split (else test); without splits, ``monitor_per_class`` images per class are held out.
    ``keep_labels``: the pool keeps its labels (a supervised reference on the same images).
    """
    splits = data.split_names()
    if "train" in splits and len(splits) > 1:
        source = data.select_split("val" if "val" in splits else next(s for s in splits if s != "train"))
        pool, monitor = data.select_split("train"), source.subset(label_budget(source, monitor_per_class, seed=seed).labelled)
    else:
        budget = label_budget(data, monitor_per_class, seed=seed)
        pool, monitor = data.subset(budget.unlabeled), data.subset(budget.labelled)
    return (pool if keep_labels else pool.unlabeled()), monitor


class KnnMonitor(pl.Callback):
    """Log kNN accuracy (``monitor/knn_acc``) and spread (``monitor/embedding_std``, see
    ``embedding_std``) of ``module.method.encoder``'s monitor features at the start and after
    every epoch, and keep them in ``<csv_path>`` (one row per epoch, -1 = before training,
    with the optimiser step reached)."""

    COLUMNS = ("epoch", "step", "knn_acc", "embedding_std")

    def __init__(self, monitor: ImageData, csv_path: Path, k: int = 20) -> None:
        self.bank, self.query = halves(monitor)
        self.csv_path = Path(csv_path)
        self.k = k

    def measure(self, trainer: pl.Trainer, module: pl.LightningModule, epoch: int) -> None:
        encoder = module.method.encoder
        bank, query = embed(encoder, self.bank.images), embed(encoder, self.query.images)
        accuracy = knn_scores(bank, self.bank, query, self.query, self.k)
        spread = embedding_std(torch.cat([bank, query]))
        if epoch >= 0:
            module.log_dict({"monitor/knn_acc": accuracy, "monitor/embedding_std": spread}, sync_dist=True)
        if trainer.is_global_zero:
            self.write({"epoch": epoch, "step": trainer.global_step, "knn_acc": accuracy, "embedding_std": spread})

    def write(self, row: dict[str, float]) -> None:
        rows = {}
        if self.csv_path.exists():
            with self.csv_path.open() as f:
                rows = {int(r["epoch"]): r for r in csv.DictReader(f)}
        rows[int(row["epoch"])] = row
        self.csv_path.parent.mkdir(parents=True, exist_ok=True)
        with self.csv_path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.COLUMNS, restval="")
            writer.writeheader()
            writer.writerows(rows[epoch] for epoch in sorted(rows))

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if trainer.current_epoch == 0 and trainer.global_step == 0:
            self.measure(trainer, module, -1)

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.measure(trainer, module, trainer.current_epoch)

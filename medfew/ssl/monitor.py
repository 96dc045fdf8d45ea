"""kNN accuracy and spread of a backbone's features: the online monitor of SSL pretraining.

Weighted kNN on L2-normalised features (Wu et al., "Unsupervised Feature Learning via
Non-Parametric Instance Discrimination", CVPR 2018, https://arxiv.org/abs/1805.01978),
using lightly's ``knn_predict``; the spread (``embedding_std``) is the collapse signal.
"""

from __future__ import annotations

import csv
import logging
import math
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from lightly.utils.benchmarking import knn_predict
from torch import Tensor, nn

from medfew.console import duration
from medfew.data.dataset import UNLABELED, ImageData
from medfew.data.splits import label_budget
from medfew.models.features import embed as embed_raw

SPREAD_SAMPLE = 512  # pool images whose spread is the collapse signal when no labelled monitor exists
log = logging.getLogger(__name__)


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


def monitor_parts(monitor: ImageData) -> tuple[ImageData, ...]:
    """A labelled monitor's kNN (bank, query) halves, or an unlabeled monitor as one part."""
    return halves(monitor) if monitor.class_counts().any() else (monitor,)


def monitor_scores(backbone: nn.Module, parts: tuple[ImageData, ...], k: int = 20) -> dict[str, float]:
    """``embedding_std`` of the backbone's features on every part, and ``knn_acc`` when the parts are (bank, query)."""
    features = [embed(backbone, part.images) for part in parts]
    scores = {"embedding_std": embedding_std(torch.cat(features))}
    if len(parts) == 2:
        scores["knn_acc"] = knn_scores(features[0], parts[0], features[1], parts[1], k)
    return scores


def pool_and_monitor(
    data: ImageData, monitor_per_class: int, seed: int = 0, keep_labels: bool = False
) -> tuple[ImageData, ImageData]:
    """The unlabeled pretraining pool and a small monitor split.

    With official splits, the pool is the train split and the monitor comes from the val
    split (else test); without splits, ``monitor_per_class`` images per class are held out.
    Data without labels (or ``monitor_per_class = 0``) has no kNN to score: the monitor is then
    an unlabeled sample of up to ``SPREAD_SAMPLE`` pool images, for the collapse signal alone.
    ``keep_labels``: the pool keeps its labels (a supervised reference on the same images).
    """
    splits = data.split_names()
    if "train" in splits and len(splits) > 1:
        pool, held_out = data.select_split("train"), data.select_split("val" if "val" in splits else next(s for s in splits if s != "train"))
    else:
        pool = held_out = data
    if monitor_per_class == 0 or not held_out.class_counts().any():
        generator = torch.Generator().manual_seed(seed)
        monitor = pool.subset(torch.randperm(len(pool), generator=generator)[:SPREAD_SAMPLE]).unlabeled()
    else:
        counts = held_out.class_counts()
        if counts.min() < monitor_per_class:
            raise ValueError(
                f"{held_out.name}: class '{held_out.class_names[counts.argmin()]}' has {counts.min()} images to hold out "
                f"for the kNN monitor, fewer than monitor_per_class = {monitor_per_class} "
                "(lower it, or monitor_per_class=0: no kNN, the collapse signal only)"
            )
        budget = label_budget(held_out, monitor_per_class, seed=seed)
        monitor = held_out.subset(budget.labelled)
        if held_out is pool:
            pool = pool.subset(budget.unlabeled)
    return (pool if keep_labels else pool.unlabeled()), monitor


def stopping_signal(scores: dict[str, float]) -> str:
    """What the patience of SSL watches: ``knn_acc`` when the monitor has labels, else the spread."""
    return "knn_acc" if "knn_acc" in scores else "embedding_std"


class KnnMonitor(pl.Callback):
    """Log kNN accuracy (``monitor/knn_acc``) and spread (``monitor/embedding_std``, see
    ``embedding_std``) of ``module.method.encoder``'s monitor features at the start and after
    every epoch, and keep them in ``<csv_path>`` (one row per epoch, -1 = before training,
    with the optimiser step reached). An unlabeled monitor gives the spread alone.

    ``patience``: stop training once that many epoch-end checks in a row have not raised the
    ``stopping_signal`` above its best so far (the check before training counts as the first best);
    None: never stop. Its count travels in the checkpoints, so a resumed run stops where an
    uninterrupted one would. Each tenth of the step budget logs one line (step, signal, elapsed, ETA),
    so a log file without a progress bar (nohup, SLURM) shows how far SSL is.
    """

    COLUMNS = ("epoch", "step", "knn_acc", "embedding_std")

    def __init__(self, monitor: ImageData, csv_path: Path, k: int = 20, patience: int | None = None) -> None:
        if patience is not None and (isinstance(patience, bool) or not isinstance(patience, int) or patience < 1):
            raise ValueError(f"ssl.patience must be a number of monitor checks >= 1, or null (the whole budget), got {patience!r}")
        self.parts = monitor_parts(monitor)
        self.csv_path = Path(csv_path)
        self.k = k
        self.patience = patience
        self.best, self.best_step, self.stale = -math.inf, 0, 0
        self.started, self.first_step, self.tenths = time.monotonic(), 0, 0
        self.total_steps = 0  # the step budget, set by ``medfew.ssl.pretrain``; 0: no progress lines

    def measure(self, trainer: pl.Trainer, module: pl.LightningModule, epoch: int) -> dict[str, float]:
        scores = monitor_scores(module.method.encoder, self.parts, self.k)
        if epoch >= 0:
            module.log_dict({f"monitor/{name}": value for name, value in scores.items()}, sync_dist=True)
        if trainer.is_global_zero:
            self.write({"epoch": epoch, "step": trainer.global_step, **scores})
        return scores

    def check(self, scores: dict[str, float], step: int) -> bool:
        """Count one check of ``scores`` at ``step``; True when patience has run out."""
        value = scores[stopping_signal(scores)]
        if value > self.best:
            self.best, self.best_step, self.stale = value, step, 0
        else:
            self.stale += 1
        return self.patience is not None and self.stale >= self.patience

    def report(self, step: int, total: int, scores: dict[str, float]) -> None:
        """Log one line when ``step`` enters a new tenth of the ``total`` steps (none without a step budget)."""
        if total <= 0 or 10 * step // total <= self.tenths:
            return
        self.tenths = 10 * step // total
        elapsed = time.monotonic() - self.started
        left = elapsed * (total - step) / max(step - self.first_step, 1)
        signal = stopping_signal(scores)
        log.info("SSL step %d/%d: %s %.4f (best %.4f); elapsed %s, ETA %s", step, total, signal, scores[signal],
                 max(self.best, scores[signal]), duration(elapsed), duration(left))  # fmt: skip

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_step": self.best_step, "stale": self.stale}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best, self.best_step, self.stale = state_dict["best"], state_dict["best_step"], state_dict["stale"]

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
        self.started, self.first_step = time.monotonic(), trainer.global_step
        self.tenths = 10 * trainer.global_step // max(self.total_steps, 1)
        if trainer.current_epoch == 0 and trainer.global_step == 0:
            self.check(self.measure(trainer, module, -1), 0)

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        scores = self.measure(trainer, module, trainer.current_epoch)
        self.report(trainer.global_step, self.total_steps, scores)
        if self.check(scores, trainer.global_step) and not trainer.should_stop:
            trainer.should_stop = True
            log.info(
                "SSL stopped at step %d: %s has not passed its best (%.4f at step %d) for %d checks (ssl.patience)",
                trainer.global_step, stopping_signal(scores), self.best, self.best_step, self.patience,
            )  # fmt: skip

"""Lightning training of any SSLMethod on an in-memory uint8 pool."""

from __future__ import annotations

from collections.abc import Iterator

import pytorch_lightning as pl
import torch
from lightly.models.utils import get_weight_decay_parameters
from lightly.utils.lars import LARS
from lightly.utils.scheduler import CosineWarmupScheduler
from torch import Tensor
from torch.utils.data import DataLoader, Sampler

from medfew.ssl.base import Recipe, SSLMethod
from medfew.ssl.views import Views

OPTIMIZERS = ("sgd", "lars", "adamw")


class SSLModule(pl.LightningModule):
    """Gathers a batch of the pool on the module's device, makes its views, returns the loss.

    Learning rate: ``recipe.lr * global_batch / 256``, linear warmup for
    ``recipe.warmup_epochs`` then cosine decay, stepped every batch.
    """

    def __init__(
        self, method: SSLMethod, views: Views, images: Tensor, recipe: Recipe, batch_size: int, seed: int = 0
    ) -> None:
        super().__init__()
        if recipe.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer '{recipe.optimizer}'; valid ones are {', '.join(OPTIMIZERS)}")
        self.method = method
        self.views = views
        self.images = images  # a plain attribute: not a buffer, so DDP never broadcasts the pool
        self.recipe = recipe
        self.batch_size = batch_size
        self.seed = seed

    def on_fit_start(self) -> None:
        self.images = self.images.to(self.device)

    def train_dataloader(self) -> DataLoader:
        indices = torch.arange(len(self.images))
        return DataLoader(
            indices, batch_size=self.batch_size, sampler=EpochShuffle(len(indices), self.seed), drop_last=True,
            generator=torch.Generator(),  # its own: creating an iterator then leaves the global RNG alone
        )

    def training_step(self, indices: Tensor, batch_idx: int) -> Tensor:
        views = self.views(self.images[indices.to(self.images.device)])
        loss = self.method(views, self.global_step, self.trainer.estimated_stepping_batches)
        self.log("train/loss", loss, prog_bar=True, sync_dist=False)
        return loss

    def on_after_backward(self) -> None:
        self.method.on_after_backward(self.current_epoch)

    def configure_optimizers(self):
        recipe = self.recipe
        decay, no_decay = get_weight_decay_parameters([self.method])
        groups = [
            {"params": [p for p in decay if p.requires_grad], "weight_decay": recipe.weight_decay},
            {"params": [p for p in no_decay if p.requires_grad], "weight_decay": 0.0},
        ]
        lr = recipe.lr * self.batch_size * self.trainer.world_size / 256
        if recipe.optimizer == "sgd":
            optimizer = torch.optim.SGD(groups, lr=lr, momentum=0.9)
        elif recipe.optimizer == "lars":
            optimizer = LARS(groups, lr=lr, momentum=0.9)
        else:
            optimizer = torch.optim.AdamW(groups, lr=lr)
        total = int(self.trainer.estimated_stepping_batches)
        per_epoch = max(total // max(self.trainer.max_epochs, 1), 1)
        scheduler = CosineWarmupScheduler(optimizer, warmup_epochs=recipe.warmup_epochs * per_epoch, max_epochs=total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


class EpochShuffle(Sampler[int]):
    """A permutation of range(n) drawn from (seed, epoch): a resumed run sees the same order."""

    def __init__(self, n: int, seed: int = 0) -> None:
        self.n = n
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:  # called by Lightning at every epoch start
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=generator).tolist())

    def __len__(self) -> int:
        return self.n

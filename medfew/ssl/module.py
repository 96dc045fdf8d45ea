"""Lightning training of any SSLMethod on an in-memory uint8 pool."""

from __future__ import annotations

from collections.abc import Iterator

import pytorch_lightning as pl
import torch
from lightly.models.utils import get_weight_decay_parameters
from lightly.utils.lars import LARS
from torch import Tensor
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import DataLoader, Sampler

from medfew.seeding import derive_seed, seeded_generator
from medfew.ssl.base import Recipe, SSLMethod
from medfew.ssl.schedules import fraction_of, warmup_cosine
from medfew.ssl.views import Views

OPTIMIZERS = ("sgd", "lars", "adamw")


class SSLModule(pl.LightningModule):
    """Gathers a batch of the pool on the module's device, makes its views, returns the loss.

    Learning rate: ``recipe.lr * global_batch / 256``, linear warmup over ``warmup_steps``
    (None: ``recipe.warmup`` of the budget) then cosine decay to 0 at the last step, stepped
    every batch; the method's ``constant_lr`` submodules keep their rate throughout and its
    ``lr_scale`` ones train at a multiple of the base rate. The
    budget (``max_steps``) is the Trainer's number of optimiser steps, at most ``steps``.
    """

    def __init__(
        self,
        method: SSLMethod,
        views: Views,
        images: Tensor,
        recipe: Recipe,
        batch_size: int,
        seed: int = 0,
        warmup_steps: int | None = None,
        steps: int | None = None,
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
        self.warmup_steps = warmup_steps
        self.steps = steps

    @property
    def max_steps(self) -> int:
        """Optimiser steps of the whole run (the schedules' length): the Trainer's epochs, at most ``steps``."""
        epochs = int(self.trainer.estimated_stepping_batches)
        return epochs if self.steps is None else min(self.steps, epochs)

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
        loss = self.method(views, self.global_step, self.max_steps)
        self.log("train/loss", loss, prog_bar=True, sync_dist=False)
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        # the step budget ends the run here rather than through Trainer(max_steps): Lightning resumes
        # an iteration-based run one epoch off from an end-of-epoch checkpoint
        if self.steps is not None and self.global_step >= self.steps:
            self.trainer.should_stop = True

    def on_after_backward(self) -> None:
        self.method.on_after_backward(self.global_step, self.max_steps)

    def configure_optimizers(self):
        recipe, total = self.recipe, self.max_steps
        warmup = fraction_of(total, recipe.warmup) if self.warmup_steps is None else self.warmup_steps
        if not 0 <= warmup <= total:
            raise ValueError(f"warmup_steps = {warmup} does not fit a budget of {total} steps")
        lr = recipe.lr * self.batch_size * self.trainer.world_size / 256
        groups, constant = [], []
        for name, modules in self.parameter_sets():
            decay, no_decay = get_weight_decay_parameters(modules)
            for params, weight_decay in ((decay, recipe.weight_decay), (no_decay, 0.0)):
                params = [p for p in params if p.requires_grad]
                if params:
                    groups.append({"params": params, "weight_decay": weight_decay, "lr": lr * self.method.lr_scale.get(name, 1.0)})
                    constant.append(name in self.method.constant_lr)
        if recipe.optimizer == "sgd":
            optimizer = torch.optim.SGD(groups, lr=lr, momentum=0.9)
        elif recipe.optimizer == "lars":
            optimizer = LARS(groups, lr=lr, momentum=0.9)
        else:
            optimizer = torch.optim.AdamW(groups, lr=lr)
        schedules = [(lambda step: 1.0) if fixed else (lambda step: warmup_cosine(step, total, warmup)) for fixed in constant]
        scheduler = LambdaLR(optimizer, schedules)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def parameter_sets(self) -> list[tuple[str, list[torch.nn.Module]]]:
        """("", every module but the named ones) and (name, [module]) for each submodule the method
        names in ``constant_lr`` or ``lr_scale``."""
        named = {name: getattr(self.method, name) for name in (*self.method.constant_lr, *self.method.lr_scale)}
        ids = {id(p) for module in named.values() for p in module.parameters()}
        rest = [m for m in self.method.children() if not any(id(p) in ids for p in m.parameters())]
        return [("", rest), *((name, [module]) for name, module in named.items())]


class EpochShuffle(Sampler[int]):
    """A permutation of range(n) drawn from (seed, epoch): a resumed run sees the same order."""

    def __init__(self, n: int, seed: int = 0) -> None:
        self.n = n
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:  # called by Lightning at every epoch start
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = seeded_generator(derive_seed(self.seed, self.epoch))
        return iter(torch.randperm(self.n, generator=generator).tolist())

    def __len__(self) -> int:
        return self.n

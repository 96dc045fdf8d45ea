"""Episodic meta-training with Lightning: base-class episodes in, best checkpoint by val accuracy out.

The engine of every learner's meta-training stage (``BackboneLearner.prepare``): it trains a
learner through ``learner.episode_logits(support, support_labels, query)`` and imports no
learner class. One meta-iteration draws ``meta_batch_size`` episodes, back-propagates each episode's
query loss as soon as it is computed (so only one episode's graph is alive, as in
learn2learn's vision examples) and takes one optimiser step on the averaged meta-gradient.
Checkpoints, resume, per-epoch reseeding and the NaN-loss stop come from
``medfew.training``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger

from medfew.data import Episode, EpisodeSampler, EpisodeSet, ImageData
from medfew.learners.backbone import BackboneLearner
from medfew.learners.base import PrepareContext
from medfew.tracking import wandb_loggers
from medfew.training import build_trainer, fit

BEST = "best"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MetaTraining:
    """How to meta-train: episode shapes, meta-batch, optimiser, validation, Trainer kwargs.

    Attributes:
        n_way, n_shot, n_query: shape of the base-class training episodes; n_way None =
            every base class.
        meta_batch_size: episodes averaged per meta-gradient step.
        steps_per_epoch: meta-iterations between validation + checkpoint (the learner's
            ``meta_train_steps`` must be a multiple of it).
        lr, weight_decay: Adam on the meta-parameters.
        val_n_way: ways of the val episodes; None = min(n_way, number of val classes).
        val_episodes: fixed val-class episodes scored every epoch to pick the best checkpoint.
        augment: batch augmentation (e.g. ``medfew.data.medical_augment``) applied to the
            support and query images of training episodes (not val), or None.
        precision: Lightning precision of meta-training (it replaces ``trainer``'s). float32 by
            default: squared distances between embeddings (ProtoNet) and MAML's inner-loop
            gradients lose too much in bf16 (ProtoNet on PBC stopped learning under bf16-mixed).
        trainer: extra ``pytorch_lightning.Trainer`` kwargs (accelerator, devices, ...);
            ``max_epochs`` is set from the learner's ``meta_train_steps``.
    """

    n_way: int | None = None
    n_shot: int = 1
    n_query: int = 15
    meta_batch_size: int = 1
    steps_per_epoch: int = 100
    lr: float = 1e-3
    weight_decay: float = 0.0
    val_n_way: int | None = None
    val_episodes: int = 100
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None
    precision: str = "32-true"
    trainer: dict[str, Any] = field(default_factory=dict)

    def fit(self, learner: BackboneLearner, context: PrepareContext, steps: int) -> None:
        """Meta-train ``learner`` in place with this recipe (``meta_train``)."""
        meta_train(learner, context, self, steps)


class EpisodeBatches:
    """One epoch of meta-batches (lists of episodes) from a seeded generator.

    The generator's seed is drawn from torch's global generator when iteration starts;
    ``medfew.training.EpochSeed`` reseeds that at every epoch start, so epoch e draws the
    same episodes in a resumed run as in an uninterrupted one. ``offset`` (the process
    rank) gives each DDP process different episodes.
    """

    def __init__(self, sampler: EpisodeSampler, meta_batch_size: int, n_batches: int, offset: int = 0) -> None:
        self.sampler = sampler
        self.meta_batch_size = meta_batch_size
        self.n_batches = n_batches
        self.offset = offset

    def __len__(self) -> int:
        return self.n_batches

    def __iter__(self) -> Iterator[list[Episode]]:
        generator = torch.Generator().manual_seed(int(torch.randint(2**62, ())) + self.offset)
        for _ in range(self.n_batches):
            yield [self.sampler.load(self.sampler.sample_indices(generator)) for _ in range(self.meta_batch_size)]


class FixedEpisodes:
    """An EpisodeSet as Lightning's val loader (its ``sampler`` attribute would pass for a DataLoader's)."""

    def __init__(self, episodes: EpisodeSet) -> None:
        self.episodes = episodes

    def __len__(self) -> int:
        return len(self.episodes)

    def __iter__(self) -> Iterator[Episode]:
        return iter(self.episodes)


class MetaTrainingModule(pl.LightningModule):
    """Lightning wrapper: manual optimisation over a meta-batch, val-episode accuracy per epoch."""

    def __init__(self, learner: BackboneLearner, base: ImageData, val: ImageData | None, recipe: MetaTraining) -> None:
        super().__init__()
        self.learner = learner
        self.base, self.val, self.recipe = base, val, recipe
        self.automatic_optimization = False
        self.val_n_way = None if val is None else val_ways(val, recipe)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.learner.parameters(), lr=self.recipe.lr, weight_decay=self.recipe.weight_decay)

    def train_dataloader(self) -> EpisodeBatches:
        r = self.recipe
        n_way = r.n_way or classes_present(self.base)
        sampler = EpisodeSampler(self.base, n_way, r.n_shot, r.n_query, device=self.device)
        return EpisodeBatches(sampler, r.meta_batch_size, r.steps_per_epoch, offset=self.global_rank)

    def val_dataloader(self) -> FixedEpisodes | list:
        if self.val is None:
            return []
        r = self.recipe
        drawn = EpisodeSet.draw(self.val, self.val_n_way, r.n_shot, r.n_query, r.val_episodes, seed=0)
        sampler = EpisodeSampler(self.val, self.val_n_way, r.n_shot, r.n_query, device=self.device)
        return FixedEpisodes(EpisodeSet(sampler, drawn.indices))

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        return batch  # the samplers already gather on the module's device

    def episode_loss(self, episode: Episode) -> tuple[torch.Tensor, torch.Tensor]:
        """Query cross-entropy and query accuracy of one episode."""
        logits = self.learner.episode_logits(episode.support, episode.support_labels, episode.query)
        accuracy = (logits.argmax(dim=-1) == episode.query_labels).float().mean()
        return F.cross_entropy(logits, episode.query_labels), accuracy

    def training_step(self, batch: list[Episode], batch_idx: int) -> torch.Tensor:
        optimizer = self.optimizers()
        optimizer.zero_grad(set_to_none=True)
        loss_sum = accuracy_sum = 0.0
        augment = self.recipe.augment
        for episode in batch:
            if augment is not None:
                episode = replace(episode, support=augment(episode.support), query=augment(episode.query))
            loss, accuracy = self.episode_loss(episode)
            self.manual_backward(loss / len(batch))
            loss_sum, accuracy_sum = loss_sum + loss.detach(), accuracy_sum + accuracy
        optimizer.step()
        loss = loss_sum / len(batch)
        self.log_dict({"train/loss": loss, "train/acc": accuracy_sum / len(batch)}, prog_bar=True)
        return loss

    def validation_step(self, episode: Episode, batch_idx: int) -> None:
        loss, accuracy = self.episode_loss(episode)
        self.log_dict({"val/loss": loss, "val/acc": accuracy}, prog_bar=True, batch_size=1)


def classes_present(data: ImageData) -> int:
    return int((data.class_counts() > 0).sum())


def val_ways(val: ImageData, recipe: MetaTraining) -> int:
    """recipe.val_n_way, else the training ways capped at the number of val classes."""
    if recipe.val_n_way is not None:
        return recipe.val_n_way
    return min(recipe.n_way or classes_present(val), classes_present(val))


def lightning_loggers(workdir: Path, run: Any, prefix: str = "") -> list[pl.loggers.Logger]:
    """CSV metrics (``<workdir>/csv/version_<n>``, one per start), plus the W&B run when one is given."""
    return [CSVLogger(str(workdir), name="csv"), *wandb_loggers(run, prefix)]


def meta_train(learner: BackboneLearner, context: PrepareContext, recipe: MetaTraining, steps: int) -> None:
    """Meta-train ``learner`` in place for ``steps`` meta-iterations; keep the best val checkpoint.

    Checkpoints go to ``<context.workdir>/checkpoints`` (``last.ckpt`` every epoch,
    ``best.ckpt`` by ``val/acc``); running again resumes, and a finished run only reloads
    the best weights.
    """
    if steps % recipe.steps_per_epoch:
        raise ValueError(
            f"meta_train_steps ({steps}) must be a multiple of steps_per_epoch ({recipe.steps_per_epoch}): "
            "a run validates, checkpoints and resumes at epoch ends"
        )
    module = MetaTrainingModule(learner, context.base, context.val, recipe)
    best = ModelCheckpoint(  # one name: a resumed run overwrites it rather than writing best-v1.ckpt
        dirpath=Path(context.workdir) / "checkpoints", filename=BEST, monitor="val/acc", mode="max", save_top_k=1,
        enable_version_counter=False,
    )
    trainer_kwargs = {
        "log_every_n_steps": 10,
        **recipe.trainer,
        "precision": recipe.precision,
        "max_epochs": steps // recipe.steps_per_epoch,
        "inference_mode": False,  # MAML adapts by gradient steps inside validation
        "num_sanity_val_steps": 0,
        **({} if context.val is not None else {"limit_val_batches": 0}),
        "callbacks": [*recipe.trainer.get("callbacks", []), *([best] if context.val is not None else [])],
    }
    logger = lightning_loggers(Path(context.workdir), context.logger, prefix=f"{type(learner).__name__}/seed{context.seed}")
    trainer = build_trainer(context.workdir, context.seed, logger=logger, **trainer_kwargs)
    start = time.perf_counter()
    log.info("meta-training %s (seed %d, %d steps) started in %s", type(learner).__name__, context.seed, steps, context.workdir)
    fit(trainer, module)
    log.info("meta-training %s (seed %d) done in %.0f s", type(learner).__name__, context.seed, time.perf_counter() - start)
    best_path = Path(context.workdir) / "checkpoints" / f"{BEST}.ckpt"
    if context.val is not None and best_path.exists():
        state = torch.load(best_path, map_location="cpu", weights_only=True)["state_dict"]
        module.load_state_dict(state)

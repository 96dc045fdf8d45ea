"""The one base of every learner built around a backbone: the backbone and the training stages
``prepare`` runs on it, in this order, each optional:

1. SSL pretraining on the unlabeled pool (``pretrain``: a partial of ``medfew.ssl.pretrain``);
   its export replaces the backbone;
2. supervised training on the base classes (``base_training``: ``BaseTraining``);
3. episodic meta-training on base-class episodes (``meta_train_steps`` > 0 with
   ``meta_training``: ``medfew.fewshot.MetaTraining``), through the learner's episodic rule
   ``episode_logits`` (ProtoNet's unless a learner has its own);

then, per task, the subclass's ``adapt`` (which may fine-tune on the support set: ``FineTune``)
and ``predict``. Without a backbone a learner works on flattened pixels.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor, nn

from medfew.data.dataset import ImageData
from medfew.learners.base import Learner, PrepareContext
from medfew.learners.classifiers import class_means, prototype_logits
from medfew.models import Backbone, load_backbone
from medfew.models.features import embed
from medfew.tracking import log_backbone

BackboneFactory = Callable[[], Backbone]
#: what a learner's ``backbone`` argument may be: a module, a factory building one, or None (pixels)
BackboneArg = nn.Module | Callable[[], nn.Module] | None


class Pretrain(Protocol):
    """An SSL step such as a partial of ``medfew.ssl.pretrain``: pool -> exported backbone file."""

    def __call__(self, data: ImageData, workdir: Path, seed: int, *, cache: Path | None = None, monitor: ImageData | None = None) -> Path: ...


class BaseTrainer(Protocol):
    """Stage 2, such as ``medfew.learners.base_training.BaseTraining``: trains ``learner`` in place."""

    def fit(self, learner: BackboneLearner, context: PrepareContext) -> None: ...


class MetaTrainer(Protocol):
    """Stage 3, such as ``medfew.fewshot.MetaTraining``: meta-trains ``learner`` in place for
    ``steps`` meta-iterations through ``learner.episode_logits``."""

    def fit(self, learner: BackboneLearner, context: PrepareContext, steps: int) -> None: ...


def build_backbone(backbone: BackboneArg) -> nn.Module | None:
    """A backbone module, the one a factory (a Hydra partial of ``create_backbone``) builds, or None."""
    if backbone is None or isinstance(backbone, nn.Module):
        return backbone
    return backbone()


class BackboneLearner(Learner):
    """A learner around ``backbone`` (or raw pixels) with optional training stages (see the module).

    Args:
        backbone: a Backbone, a factory building one (random init, timm weights or a file, by its
            config), or None: the learner works on flattened pixels.
        pretrain: optional SSL step, called as ``pretrain(unlabeled, workdir / "ssl", seed, cache=cache,
            monitor=monitor)`` (with a ``context.cache``, identical pretrainings of a run share one folder there).
        base_training: optional supervised training on ``context.base`` (every class at once).
        meta_train_steps: meta-iterations of episodic meta-training; 0 means none.
        meta_training: the meta-training recipe (needed when ``meta_train_steps`` > 0).
        batch_size: images per forward pass when extracting frozen features.
    """

    def __init__(
        self,
        backbone: BackboneArg = None,
        pretrain: Pretrain | None = None,
        base_training: BaseTrainer | None = None,
        meta_train_steps: int = 0,
        meta_training: MetaTrainer | None = None,
        batch_size: int = 256,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        given = {"pretrain": pretrain, "base_training": base_training, "meta_train_steps": meta_train_steps}
        stages = [key for key, value in given.items() if value]
        if backbone is None and stages:
            raise ValueError(f"{name}: {stages[0]} is set but backbone is None (raw pixels); give a backbone")
        if meta_train_steps < 0:
            raise ValueError(f"meta_train_steps must be >= 0, got {meta_train_steps}")
        if meta_train_steps and meta_training is None:
            raise ValueError(
                f"{name}: meta_train_steps = {meta_train_steps} but no meta_training recipe (medfew.fewshot.MetaTraining)"
            )
        self.backbone = build_backbone(backbone)
        self.pretrain = pretrain
        self.base_training = base_training
        self.meta_train_steps = meta_train_steps
        self.meta_training = meta_training
        self.batch_size = batch_size

    def prepare(self, context: PrepareContext) -> None:
        """Run the configured stages in order (SSL, base training, meta-training), then switch to eval mode."""
        if self.pretrain is not None:
            self.use_backbone(self.pretrained_backbone(context))
        if self.base_training is not None:
            self.base_training.fit(self, context)
        if self.meta_train_steps > 0:
            if context.base is None:
                raise ValueError(
                    f"{type(self).__name__} meta-trains on base classes but the context has none; "
                    "give PrepareContext.base or set meta_train_steps=0"
                )
            self.meta_training.fit(self, context, self.meta_train_steps)
        self.eval()

    def pretrained_backbone(self, context: PrepareContext) -> nn.Module:
        """Stage 1: the SSL export for ``context.unlabeled``, on the device the learner is on."""
        if context.unlabeled is None or len(context.unlabeled) == 0:
            raise ValueError(f"{type(self).__name__}: pretrain needs unlabeled images, but the protocol gave none")
        export = self.pretrain(context.unlabeled, context.workdir / "ssl", context.seed, cache=context.cache, monitor=context.monitor)
        if context.logger is not None:
            log_backbone(context.logger, export)
        device = next(self.parameters(), torch.empty(0)).device
        return load_backbone(export).to(device)

    def use_backbone(self, backbone: nn.Module) -> None:
        """Make ``backbone`` the learner's (after SSL pretraining); learners that wrap it override this."""
        self.backbone = backbone

    def require_backbone(self) -> Backbone:
        if self.backbone is None:
            raise ValueError(f"{type(self).__name__} needs a backbone; its config has backbone: null")
        return self.backbone

    def meta_training_graph(self) -> bool:
        """True while meta-training: training mode with autograd on."""
        return self.training and torch.is_grad_enabled()

    def features(self, images: Tensor) -> Tensor:
        """(B, D) features for the episodic rule: the backbone in the mode it is in, with the graph
        only while meta-training (so evaluating many episodes does not grow memory)."""
        with torch.set_grad_enabled(self.meta_training_graph()):
            return self.require_backbone()(images)

    def episode_logits(self, support: Tensor, support_labels: Tensor, query: Tensor) -> Tensor:
        """(n_query, n_way) logits of the rule meta-training trains: ProtoNet's (negative squared
        Euclidean distance to the class-mean support features) unless a learner overrides it."""
        return prototype_logits(self.features(query), class_means(self.features(support), support_labels))

    def embed(self, images: Tensor) -> Tensor:
        """(B, C, H, W) images -> (B, D) frozen features (eval mode, no graph), or (B, C*H*W) pixels."""
        if self.backbone is None:
            return images.flatten(1)
        return embed(self.backbone, images, self.batch_size)

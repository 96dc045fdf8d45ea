"""What every learner built around one backbone shares: the backbone, its optional SSL
pretraining step, and frozen feature extraction (raw pixels when there is no backbone)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor

from medfew.data.dataset import ImageData
from medfew.learners.base import Learner, PrepareContext
from medfew.models import Backbone, load_backbone

BackboneFactory = Callable[[], Backbone]


class Pretrain(Protocol):
    """An SSL step such as a partial of ``medfew.ssl.pretrain``: pool -> exported backbone file."""

    def __call__(self, data: ImageData, workdir: Path, seed: int, *, cache: Path | None = None) -> Path: ...


class BackboneLearner(Learner):
    """A learner around ``backbone`` (a partial of ``create_backbone``), or raw pixels when None.

    Args:
        backbone: builds the backbone (random init, timm weights or a file, by its config);
            None means the learner works on flattened pixels.
        pretrain: optional SSL step, called as ``pretrain(unlabeled, workdir / "ssl", seed, cache=cache)``
            in ``prepare`` (with a ``context.cache``, identical pretrainings of a run share one
            folder there); the backbone is then replaced by the export it returns.
        batch_size: images per forward pass when extracting features.
    """

    def __init__(self, backbone: BackboneFactory | None = None, pretrain: Pretrain | None = None, batch_size: int = 256) -> None:
        super().__init__()
        if pretrain is not None and backbone is None:
            raise ValueError(f"{type(self).__name__}: pretrain is set but backbone is None (raw pixels); give a backbone")
        self.backbone = backbone() if backbone is not None else None
        self.pretrain = pretrain
        self.batch_size = batch_size

    def prepare(self, context: PrepareContext) -> None:
        """Run the SSL step on ``context.unlabeled`` when configured and load its export."""
        if self.pretrain is None:
            return
        if context.unlabeled is None or len(context.unlabeled) == 0:
            raise ValueError(f"{type(self).__name__}: pretrain needs unlabeled images, but the protocol gave none")
        export = self.pretrain(context.unlabeled, context.workdir / "ssl", context.seed, cache=context.cache)
        self.backbone = load_backbone(export)

    def require_backbone(self) -> Backbone:
        if self.backbone is None:
            raise ValueError(f"{type(self).__name__} needs a backbone; its config has backbone: null")
        return self.backbone

    @torch.no_grad()
    def embed(self, images: Tensor) -> Tensor:
        """(B, C, H, W) images -> (B, D) frozen features (eval mode), or (B, C*H*W) pixels."""
        if self.backbone is None:
            return images.flatten(1)
        was_training = self.backbone.training
        self.backbone.eval()
        features = torch.cat([self.backbone(chunk) for chunk in images.split(self.batch_size)])
        self.backbone.train(was_training)
        return features

"""Training one learner for use: all its stages on the labelled images of a dataset, then one adapted state.

``fit_learner`` does for one set of images what a comparison does for one task
(``medfew.evaluation.compare.build_learner``: seeded, built, prepared; then ``adapt``), with the
chosen labelled images as both the base data of the training stages and the support set. ``images``
is ``all`` (every labelled image of the data) or ``train`` (its own train part; its val part, when
it has one, then serves early stopping and meta-training's validation).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from medfew.data.dataset import UNLABELED, ImageData
from medfew.data.episodes import to_float
from medfew.deploy.bundle import Preprocessing, save_bundle
from medfew.evaluation.compare import build_learner
from medfew.evaluation.folds import fingerprint
from medfew.learners.base import Learner, PrepareContext
from medfew.seeding import derive_seed

PARTS = ("all", "train")


@dataclass(frozen=True)
class Fitted:
    """A prepared learner, its state adapted to ``labelled`` (the training images), and what it left for validation."""

    learner: Learner
    state: Any
    labelled: ImageData
    part: str


def training_images(data: ImageData, part: str) -> tuple[ImageData, ImageData, ImageData | None]:
    """(labelled training images, every image of the part for pretraining, val images or None)."""
    if part not in PARTS:
        raise ValueError(f"images={part!r}: choose one of {PARTS}")
    if part == "train":
        if "train" not in data.split_names():
            raise ValueError(f"images=train: {data.name} has no train part (splits: {data.split_names() or 'none'}); use images=all")
        chosen = data.select_split("train")
        val = data.select_split("val") if "val" in data.split_names() else None
    else:
        chosen, val = data, None
    labelled = chosen.subset(torch.nonzero(chosen.labels != UNLABELED).flatten())
    for name, count in zip(data.class_names, labelled.class_counts().tolist()):
        if count == 0:
            raise ValueError(f"{data.name}: class '{name}' has no labelled image among the {part} images; every class needs one")
    return labelled, chosen, val


def fit_learner(
    learner_cfg: DictConfig,
    name: str,
    data: ImageData,
    part: str,
    seed: int,
    workdir: Path,
    device: torch.device,
    cache: Path | None = None,
    logger: Any = None,
) -> Fitted:
    """Build learner ``name``, run its stages on the ``part`` images of ``data`` and adapt it to their labels;
    ``logger``: a W&B run the stages log to, or None."""
    labelled, pool, val = training_images(data, part)
    context = PrepareContext(workdir=workdir, seed=seed, base=labelled, val=val, unlabeled=pool.unlabeled(), logger=logger, cache=cache)
    learner = build_learner(learner_cfg, name, context, device)
    torch.manual_seed(derive_seed(seed, 0))  # as a comparison seeds its first task
    val_pair = None if val is None else (to_float(val.images).to(device), val.labels.to(device))
    state = learner.adapt(to_float(labelled.images).to(device), labelled.labels.to(device), val_pair)
    return Fitted(learner, state, labelled, part)


def save_fitted(
    fitted: Fitted, folder: str | os.PathLike, name: str, config: dict[str, Any], bits: int = 16, smoke: bool = False
) -> Path:
    """Write ``fitted`` as a model bundle (``medfew.deploy.bundle``); ``config``: the learner's resolved config;
    ``bits``: what 16-bit files of the data use; ``smoke``: trained at smoke settings (marked in bundle.json)."""
    data = fitted.labelled
    channels, height, width = data.images.shape[1:]
    counts = dict(zip(data.class_names, data.class_counts().tolist()))
    record = {
        "name": data.name,
        "part": fitted.part,
        "images": len(data),
        "class_counts": counts,
        "fingerprint": fingerprint(f"fit:{fitted.part}", data),
        **({"smoke": True} if smoke else {}),
    }
    preprocessing = Preprocessing(height=int(height), width=int(width), channels=int(channels), bits=bits)
    return save_bundle(folder, fitted.learner.cpu(), fitted.state, name, config, data.class_names, preprocessing, record)

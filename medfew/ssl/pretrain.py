"""``pretrain``: one call from an unlabeled pool to an exported backbone file."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import CSVLogger
from torch import Tensor

from medfew.data.dataset import ImageData
from medfew.models import Backbone, open_residual_branches, save_backbone
from medfew.ssl.barlow_twins import BarlowTwins
from medfew.ssl.base import SSLMethod
from medfew.ssl.byol import BYOL
from medfew.ssl.dino import DINO
from medfew.ssl.moco import MoCo
from medfew.ssl.module import SSLModule
from medfew.ssl.monitor import SPREAD_SAMPLE, KnnMonitor
from medfew.ssl.simclr import SimCLR
from medfew.ssl.simsiam import SimSiam
from medfew.ssl.vicreg import VICReg
from medfew.ssl.views import Augment, Views, build_augment
from medfew.training import accelerator_device, build_trainer, fit, resolve_precision

METHODS: dict[str, type[SSLMethod]] = {
    "simclr": SimCLR,
    "moco": MoCo,
    "byol": BYOL,
    "simsiam": SimSiam,
    "dino": DINO,
    "barlow_twins": BarlowTwins,
    "vicreg": VICReg,
}
EXPORT_NAME = "backbone.safetensors"
#: Trainer options that change what is shown, not the weights (left out of the recorded settings)
DISPLAY_OPTIONS = ("enable_progress_bar", "enable_model_summary", "log_every_n_steps")
log = logging.getLogger(__name__)


def build_method(method: str | Callable[[Backbone], SSLMethod], backbone: Backbone) -> SSLMethod:
    """A method by name (its defaults) or from a callable such as a Hydra partial of its class."""
    if callable(method):
        return method(backbone)
    if method not in METHODS:
        raise KeyError(f"unknown SSL method '{method}'; valid methods are {', '.join(METHODS)}")
    return METHODS[method](backbone)


def method_settings(method: str | Callable[[Backbone], SSLMethod]) -> Any:
    """The method's class and every constructor argument, defaults included (so that a changed
    default changes the cache key); a callable that is not a class or a partial of one is
    described as it is."""
    func, args, kwargs = METHODS.get(method, method) if isinstance(method, str) else method, (), {}
    while isinstance(func, functools.partial):
        func, args, kwargs = func.func, func.args + args, func.keywords | kwargs
    if not isinstance(func, type):
        return describe(method)
    bound = inspect.signature(func).bind(None, *args, **kwargs)  # None stands for the backbone
    bound.apply_defaults()
    arguments = dict(list(bound.arguments.items())[1:])
    return {"_target_": describe(func), **describe(arguments)}


def budget_rule(steps: int | None, epochs: int | None) -> dict[str, int]:
    """The budget as recorded: ``{"steps": n}``, ``{"epochs": n}``, or ``{"epochs": n, "max_steps": m}``
    when both are given (passes over the pool, at most ``m`` steps); neither is an error."""
    given = {name: value for name, value in (("steps", steps), ("epochs", epochs)) if value is not None}
    if not given:
        raise ValueError(
            "give the pretraining budget as steps (optimiser steps), epochs (passes over the pool) or both "
            "(epochs, at most that many steps): got neither (e.g. ssl.epochs=50)"
        )
    for name, value in given.items():
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    return {"epochs": epochs, "max_steps": steps} if len(given) == 2 else given


def budget_steps(budget: dict[str, int], n_images: int, batch_size: int, devices: int = 1, limit_batches: Any = None) -> int:
    """Optimiser steps of a ``budget_rule`` budget on a pool of ``n_images``: the steps, or the epochs'
    batches (``n_images // (batch_size * devices)`` each, at most an int ``limit_batches``) up to ``max_steps``;
    a pool smaller than a batch is one batch (``pretrain`` shrinks the batch to it)."""
    if "steps" in budget:
        return budget["steps"]
    per_epoch = n_images // (min(batch_size, n_images) * devices)
    if isinstance(limit_batches, int) and not isinstance(limit_batches, bool):
        per_epoch = min(per_epoch, limit_batches)
    total = budget["epochs"] * per_epoch
    return min(total, budget.get("max_steps") or total)


def pretrain(
    data: ImageData,
    workdir: str | os.PathLike,
    seed: int = 0,
    *,
    method: str | Callable[[Backbone], SSLMethod] = "simclr",
    backbone: Callable[[], Backbone],
    augment: Augment | None = None,
    steps: int | None = None,
    epochs: int | None = None,
    batch_size: int = 128,
    optimizer: str | None = None,
    lr: float | None = None,
    weight_decay: float | None = None,
    warmup_steps: int | None = None,
    zero_init_last: bool = False,
    trainer: Mapping[str, Any] | None = None,
    logger: Any = None,
    monitor: ImageData | None = None,
    knn_k: int = 20,
    patience: int | None = None,
    cache: str | os.PathLike | None = None,
    dry_run: bool = False,
) -> Path:
    """Self-supervised pretraining of ``backbone()`` on ``data``'s images (labels unused).

    Returns ``<run folder>/backbone.safetensors`` (load it with ``medfew.models.load_backbone``
    or ``create_backbone(..., pretrained=path)``). A finished run folder returns its export
    at once; an interrupted one resumes from ``<run folder>/checkpoints/last.ckpt``.

    Budget: ``steps`` optimiser steps, or ``epochs`` passes over the pool of
    ``len(data) // (batch_size * devices)`` steps each, or both: the epochs, at most ``steps``
    steps (a budget sized to the pool, capped). Every schedule
    (warmup, cosine decay, teacher momentum, DINO's temperatures) runs over that many steps;
    ``patience`` may stop it sooner.

    Args:
        data: the pool; uint8 images (N, C, H, W), labels ignored.
        workdir: run folder (checkpoints, ``knn.csv``, ``metrics.csv``, ``pretrain.json``, export).
        seed: seeds initialisation, shuffling and augmentation.
        method: a name in ``METHODS`` or a callable ``backbone -> SSLMethod``.
        backbone: zero-argument callable building a fresh Backbone.
        augment: medical_augment keyword arguments, or a batch augmentation callable.
        steps, epochs: the budget (see above); at least one of them must be set.
        batch_size: per-device batch size (the last partial batch of an epoch is dropped).
        optimizer, lr, weight_decay: override the method's ``recipe`` (lr is per 256 images).
        warmup_steps: linear lr warmup; None: the recipe's fraction of the budget.
        zero_init_last: keep timm's zero-initialised residual branches in a random ResNet; False
            (default) starts them at one, as lightly's examples do (``open_residual_branches``).
        trainer: extra ``pytorch_lightning.Trainer`` keyword arguments (devices, strategy, precision ...).
        logger: a Lightning logger (or list); default: CSV in the workdir.
        monitor: small split for the per-epoch spread, and kNN accuracy when it is labelled; or None.
        knn_k: neighbours of the kNN monitor.
        patience: stop after that many epoch-end monitor checks without a new best kNN accuracy
            (or spread, for an unlabeled monitor; ``KnnMonitor``); None: the whole budget. Without a
            ``monitor``, a seeded sample of the pool (``SPREAD_SAMPLE`` images) gives the spread.
        cache: a folder shared by several calls, or None. When given, the run folder is
            ``<cache>/ssl/<key>`` instead of ``workdir``; the key hashes the settings recorded in
            ``pretrain.json`` except the pool's name (the pool's images in order, the seed, the
            method with all its arguments, backbone, augmentation, budget, batch size, recipe,
            warmup, trainer options but display ones; with ``patience``, also it and the monitor's
            images), so identical calls train once.
        dry_run: return the export path at once, training and writing nothing (its existence tells
            whether the run is done: how a plan counts the pretrainings a cache shares).
    """
    if len(data) < 2:
        raise ValueError(f"{data.name}: {len(data)} image(s) in the pool; SSL compares views of 2 images or more")
    if len(data) < batch_size:
        log.warning("%s: %d images in the pool, fewer than batch_size = %d: batches of %d", data.name, len(data), batch_size, len(data))
        batch_size = len(data)
    budget = budget_rule(steps, epochs)
    if warmup_steps is not None and not 0 <= warmup_steps <= budget.get("steps", warmup_steps):
        raise ValueError(f"warmup_steps = {warmup_steps} does not fit a budget of {steps} steps")
    pl.seed_everything(seed, verbose=False)
    encoder = backbone()
    if not zero_init_last:
        open_residual_branches(encoder)
    ssl = build_method(method, encoder)
    ssl.fit_pool(len(data))
    overrides = {"optimizer": optimizer, "lr": lr, "weight_decay": weight_decay}
    recipe = dataclasses.replace(ssl.recipe, **{k: v for k, v in overrides.items() if v is not None})
    kwargs = {k: v for k, v in dict(trainer or {}).items() if k not in ("max_epochs", "max_steps")}  # the budget decides
    callbacks = list(kwargs.pop("callbacks", []))
    device_type = accelerator_device(kwargs.get("accelerator", "auto"))
    kwargs["precision"] = resolve_precision(kwargs.get("precision", "auto"), device_type)  # the key records what ran
    if patience is not None and monitor is None:
        generator = torch.Generator().manual_seed(seed)
        monitor = data.subset(torch.randperm(len(data), generator=generator)[:SPREAD_SAMPLE]).unlabeled()
    settings = {
        "method": method_settings(method),
        "backbone": describe(backbone),
        "augment": describe(augment),
        "n_images": len(data),
        "images": images_hash(data.images),
        "budget": budget,
        "batch_size": batch_size,
        "seed": seed,
        "recipe": dataclasses.asdict(recipe),
        "warmup_steps": warmup_steps,
        "zero_init_last": zero_init_last,
        "trainer": describe({k: v for k, v in kwargs.items() if k not in DISPLAY_OPTIONS}),
    }
    if patience is not None:  # the monitor then decides where training ends
        settings["patience"] = {"checks": patience, "monitor": images_hash(monitor.images), "labelled": bool(monitor.class_counts().any())}
    workdir = Path(cache) / "ssl" / settings_key(settings) if cache is not None else Path(workdir)
    export = workdir / EXPORT_NAME
    check_settings(workdir / "pretrain.json", settings)
    if dry_run:
        return export
    if export.exists():
        log.info("SSL pretraining (seed %d, %d images): reused %s", seed, len(data), workdir)
        return export
    views = Views(build_augment(augment, data.images.shape[-1]), ssl.view_spec, data.images.shape[-1])
    module = SSLModule(ssl, views, data.images, recipe, batch_size, seed, warmup_steps, steps)
    watcher = None if monitor is None else KnnMonitor(monitor, workdir / "knn.csv", knn_k, patience)
    if watcher is not None:
        callbacks.append(watcher)
    pl_trainer = build_trainer(  # a step budget: at least one step per epoch, and the module stops the run
        workdir, seed, logger=CSVLogger(workdir, name="logs") if logger is None else logger,
        callbacks=callbacks, max_epochs=epochs or steps, **kwargs,
    )
    total = budget_steps(budget, len(data), batch_size, pl_trainer.world_size, kwargs.get("limit_train_batches"))
    if watcher is not None:
        watcher.total_steps = total
    if pl_trainer.is_global_zero:
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "pretrain.json").write_text(json.dumps({"data": data.name} | settings, indent=2))
    start = time.perf_counter()
    log.info("SSL pretraining (seed %d, %d images, %d steps of %d) started in %s", seed, len(data), total, batch_size, workdir)
    fit(pl_trainer, module)
    if pl_trainer.is_global_zero:
        partial = export.with_suffix(".partial")
        save_backbone(ssl.encoder, partial)
        os.replace(partial, export)  # atomic: an export on disk always means a finished run
    pl_trainer.strategy.barrier()
    log.info("SSL pretraining (seed %d) done: %d steps in %.0f s", seed, pl_trainer.global_step, time.perf_counter() - start)
    return export


def check_settings(path: Path, settings: dict[str, Any]) -> None:
    """Refuse to resume or reuse a workdir whose recorded run differs from this one."""
    if not path.exists():
        return
    saved, settings = json.loads(path.read_text()), json.loads(json.dumps(settings))
    differ = [f"{k}: {saved.get(k)} there, {v} now" for k, v in settings.items() if saved.get(k) != v]
    if differ:
        raise ValueError(
            f"{path.parent} holds a pretraining run with other settings ({'; '.join(differ)}); "
            "use another workdir or delete that one"
        )


def describe(value: Any) -> Any:
    """A setting as JSON: plain values as they are, a partial (Hydra's ``_partial_``) as its
    target and arguments, a class or function by import path, any other object (an
    augmentation module) by its class and public attributes."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        return {str(k): describe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [describe(v) for v in value]
    if isinstance(value, functools.partial):
        return {"_target_": describe(value.func), "args": describe(value.args), **describe(value.keywords)}
    if isinstance(value, type) or hasattr(value, "__qualname__"):
        return f"{value.__module__}.{value.__qualname__}"
    attributes = {k: v for k, v in getattr(value, "__dict__", {}).items() if not k.startswith("_")}
    return {"_target_": describe(type(value)), **describe(attributes)}


def images_hash(images: Tensor) -> str:
    """16 hex digits of sha256 over uint8 images (N, C, H, W): shape, order and pixels."""
    array = images.detach().cpu().contiguous().numpy()
    digest = hashlib.sha256(f"{array.dtype}{array.shape}".encode())
    digest.update(array)
    return digest.hexdigest()[:16]


def settings_key(settings: dict[str, Any]) -> str:
    """16 hex digits of sha256 over the settings (JSON, sorted keys): the cache folder name."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]

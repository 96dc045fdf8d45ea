"""Weights & Biases runs: offline by default, online when asked, never fatal."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

MODES = ("offline", "online", "disabled")


def start_wandb(
    mode: str = "offline",
    project: str = "medfew",
    run_dir: str | os.PathLike = ".",
    name: str | None = None,
    group: str | None = None,
    tags: list[str] | None = None,
    tag_values: Mapping[str, Any] | None = None,
    config: dict[str, Any] | None = None,
    entity: str | None = None,
    init_timeout: float = 30,
):
    """Start a W&B run writing under ``run_dir``; None when ``mode`` is "disabled" and in every
    DDP process but the first (one run per job, not one per process).

    ``tag_values`` adds one ``key:value`` tag per value, e.g. {"learner": ["finetune",
    "protonet"], "seed": [0]} -> learner:finetune, learner:protonet, seed:0 (None skipped).

    An online run that cannot reach its server falls back to offline with a warning, so
    nothing is lost: ``wandb sync <run_dir>/wandb/offline-run-*`` uploads it later.
    """
    if mode not in MODES:
        raise ValueError(f"logger mode '{mode}' is not one of {MODES}")
    from pytorch_lightning.utilities.rank_zero import rank_zero_only

    if mode == "disabled" or rank_zero_only.rank != 0:
        return None
    import wandb

    Path(run_dir).mkdir(parents=True, exist_ok=True)
    tags = [*(tags or []), *value_tags(tag_values or {})]
    kwargs = dict(
        project=project, entity=entity, dir=str(run_dir), name=name, group=group,
        tags=tags, config=config, reinit="finish_previous",
    )
    try:
        return wandb.init(mode=mode, settings=wandb.Settings(init_timeout=init_timeout, silent=True), **kwargs)
    except Exception as error:  # wandb raises several error types when the server is unreachable
        if mode == "offline":
            raise
        warnings.warn(f"W&B online run failed ({type(error).__name__}: {error}); logging offline to {run_dir}/wandb")
        return wandb.init(mode="offline", settings=wandb.Settings(silent=True), **kwargs)


def value_tags(tag_values: Mapping[str, Any]) -> list[str]:
    """``key:value`` for every value of every key (a scalar is one value; None adds nothing)."""
    tags = []
    for key, values in tag_values.items():
        if values is None:
            continue
        for value in values if isinstance(values, Sequence) and not isinstance(values, str) else [values]:
            tags.append(f"{key}:{value:g}" if isinstance(value, float) else f"{key}:{value}")
    return tags

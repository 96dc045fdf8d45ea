"""Learners are found by name: ``learner/<name>.yaml`` anywhere on Hydra's config search path.

A new learner is one Python file (its class implements ``Learner``) plus one config whose
``_target_`` names that class; nothing else changes. The config is composed by Hydra (so
its own ``defaults`` list works, e.g. ``linear_probe`` extends ``finetune``) and stays
unresolved, so ``${backbone}`` and ``${data.image_size}`` resolve against the root config
it is merged into.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import MissingConfigException
from omegaconf import DictConfig, OmegaConf, open_dict

from medfew.config import close_name

CONFIG_MODULE = "medfew.configs"  # the repository's configs/, shipped inside the package
CONFIG_DIR = Path(str(files(CONFIG_MODULE)))


def learner_config(name: str, searchpath: Sequence[str] = ()) -> DictConfig:
    """The unresolved config of learner ``name`` (``learner/<name>.yaml``).

    Args:
        name: file name without ``.yaml``.
        searchpath: extra config roots (Hydra ``hydra.searchpath`` entries such as
            ``file:///path/to/configs``), searched besides the running app's (or the
            repository's ``configs/`` when no Hydra app is running).
    """
    overrides = [f"+learner={name}"]
    if searchpath:
        overrides.append(f"hydra.searchpath=[{','.join(searchpath)}]")
    try:
        if GlobalHydra.instance().is_initialized():
            composed = compose(overrides=overrides)
        else:
            with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
                composed = compose(overrides=overrides)
    except MissingConfigException as error:
        options = error.options or []
        raise KeyError(
            f"unknown learner '{name}'{close_name(name, options)}: no learner/{name}.yaml on the config search path; "
            f"valid learners are {', '.join(options) or 'none'}"
        ) from None
    return composed.learner


def with_learner(cfg: DictConfig, name: str, overrides: Mapping[str, Any] | None = None, searchpath: Sequence[str] = ()) -> DictConfig:
    """A copy of the root ``cfg`` with ``learner`` = the named learner's config plus ``overrides``."""
    merged = cfg.copy()
    with open_dict(merged):
        merged.learner = OmegaConf.merge(learner_config(name, searchpath), overrides or {})
    return merged

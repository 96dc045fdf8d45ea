"""Config checks and budget knobs shared by every entry point.

``knobs`` shrink or grow every learner through the setting names learners share (``steps``,
``meta_train_steps``, ``pretrain.steps``, ...), so a budget such as ``debug=smoke`` names no
learner: a new learner with those names is shrunk too. ``check_keys`` makes a misspelt key an
error with a close-name suggestion instead of a silently ignored setting; ``check_seeds`` and
``check_training_settings`` refuse a repeated seed and a training setting out of range
(``ssl.lr must be > 0, got -0.1``) before anything trains. ``record_command``
writes a command's record (``.hydra/``) into its folder once the command may write there.
"""

from __future__ import annotations

import difflib
import os
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, Node, OmegaConf

from medfew.files import write_text

COMMAND_RECORD = ".hydra"  # the folder of a run's command record, where Hydra would put it


def folder_name(text: str) -> str:
    """``text`` as one folder name: '/' written as %2F ('%' as %25, so two texts never share a name)."""
    return str(text).replace("%", "%25").replace("/", "%2F")


# ${folder_name:...} in configs/hydra: a sweep's job folder is named from its overrides, and a path-valued one
# (data.source.path=/a/b) would otherwise nest the job in subfolders
OmegaConf.register_new_resolver("folder_name", folder_name, replace=True)


def path_name(text: str) -> str:
    """The last part of a path as one folder name; for a model bundle (``<run>/model``), its run's name."""
    path = Path(str(text).rstrip("/\\"))
    return folder_name((path.parent.name if path.name == "model" else path.name) or "input")


# ${path_name:...} in configs/predict.yaml: a predict run is named after its input and its model
OmegaConf.register_new_resolver("path_name", path_name, replace=True)


def leaf_paths(node: DictConfig, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Key paths of ``node``'s leaves, without resolving interpolations (``${backbone}`` is a leaf)."""
    for key in node.keys():
        child = node._get_node(key)
        if isinstance(child, DictConfig) and not child._is_interpolation() and not child._is_none():
            yield from leaf_paths(child, (*prefix, str(key)))
        else:
            yield (*prefix, str(key))


def leaf(node: DictConfig, path: tuple[str, ...]) -> Node:
    """The node at ``path``, its interpolation unresolved."""
    for key in path:
        node = node._get_node(key)
    return node


def knob_for(path: tuple[str, ...], knobs: Mapping[str, Any]) -> str | None:
    """The knob whose dotted name is the longest suffix of ``path`` (None: no knob applies)."""
    matches = [name for name in knobs if tuple(name.split(".")) == path[-len(name.split(".")) :]]
    return max(matches, key=lambda name: name.count("."), default=None)


def apply_knobs(node: DictConfig, knobs: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> set[str]:
    """Set every non-null leaf of ``node`` that a non-null knob names; return the knobs that applied.

    A null leaf is a setting turned off (``steps: null`` when the budget is in ``epochs``) and stays so.

    ``prefix`` is the path knobs see ``node`` at: ``("pretrain",)`` lets ``pretrain.steps`` reach
    the SSL settings of ``medfew pretrain``, which sit at ``ssl`` there and at ``pretrain`` in a learner.
    """
    knobs = {name: value for name, value in flat_knobs(knobs).items() if value is not None}
    used = set()
    for path in list(leaf_paths(node)):
        name = knob_for((*prefix, *path), knobs)
        if name is not None and not leaf(node, path)._is_none():
            OmegaConf.update(node, ".".join(path), knobs[name], merge=False)
            used.add(name)
    return used


def flat_knobs(knobs: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Knobs by dotted name: ``{"pretrain": {"steps": 3}}`` (``+knobs.pretrain.steps=3`` on the
    command line) is ``{"pretrain.steps": 3}``; one name given twice with two values is an error."""
    flat: dict[str, Any] = {}
    for key, value in knobs.items():
        name = f"{prefix}{key}"
        items = flat_knobs(value, f"{name}.") if isinstance(value, Mapping) else {name: value}
        for dotted, setting in items.items():
            if dotted in flat and flat[dotted] != setting:
                raise ValueError(f"knobs.{dotted} is given twice, as {flat[dotted]} and {setting}")
            flat[dotted] = setting
    return flat


def check_keys(base: DictConfig, changes: Mapping[str, Any], where: str) -> None:
    """Raise a KeyError for a key of ``changes`` (nested) that ``base`` lacks, with close names.

    A key whose value in ``base`` is null or an interpolation accepts any change below it.
    """
    for key, value in changes.items():
        if key not in base:
            close = difflib.get_close_matches(str(key), [str(k) for k in base.keys()], n=3)
            hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else f"; valid keys are {', '.join(map(str, base.keys()))}"
            raise KeyError(f"{where}.{key} is not a setting{hint}")
        child = base._get_node(key)
        if isinstance(value, Mapping) and isinstance(child, DictConfig) and not child._is_interpolation() and not child._is_none():
            check_keys(child, value, f"{where}.{key}")


def check_seeds(seeds: Sequence[Any]) -> None:
    """Refuse a ``seeds`` list that names a seed twice: its rows would repeat the same scores and
    count twice in every mean and test."""
    repeated = [str(seed) for seed, count in Counter(seeds).items() if count > 1]
    if repeated:
        raise ValueError(f"seeds = {list(seeds)} lists seed {', '.join(repeated)} more than once; give each seed once")


def positive(value: float) -> bool:
    return value > 0


def non_negative(value: float) -> bool:
    return value >= 0


def share(value: float) -> bool:
    return 0 <= value <= 1


#: training settings checked by name wherever they sit (``lr``, ``pretrain.lr``, ``meta_training.lr``; the longest
#: dotted suffix wins, as for knobs): name -> (test, what it asks). Null (off, or a recipe's own value) always passes;
#: 0 steps of fine-tuning or meta-training is allowed (the plain backbone), an SSL budget of 0 is not.
LIMITS = {
    **dict.fromkeys(("lr", "inner_lr", "batch_size", "epochs", "meta_batch_size", "steps_per_epoch", "pretrain.steps"), (positive, "> 0")),
    **dict.fromkeys(("steps", "meta_train_steps", "weight_decay", "warmup_steps"), (non_negative, ">= 0")),
    **dict.fromkeys(("momentum", "center_momentum"), (share, "in [0, 1]")),
}


def check_training_settings(node: DictConfig, where: str, prefix: tuple[str, ...] = ()) -> None:
    """Raise a ValueError naming the first setting of ``node`` that ``LIMITS`` refuses, as ``<where>.<path>``:
    before any training, where an optimiser would name no key and show a scaled value. ``prefix``: the
    path ``LIMITS`` sees ``node`` at, as in ``apply_knobs`` (``("pretrain",)`` for the SSL settings at ``ssl``)."""
    for path in leaf_paths(node):
        name = knob_for((*prefix, *path), LIMITS)
        if name is None:
            continue
        value, (test, asked) = OmegaConf.select(node, ".".join(path)), LIMITS[name]
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not test(value)):
            raise ValueError(f"{where}.{'.'.join(path)} must be {asked}, got {value!r}")


def record_command(cfg: DictConfig, folder: str | os.PathLike) -> None:
    """Write ``<folder>/.hydra/`` as Hydra would: config.yaml (``cfg``), hydra.yaml and overrides.yaml.

    configs/hydra sets ``hydra.output_subdir`` to null so that Hydra does not write them before the
    command starts: a command refused (the folder locked, or holding other data) would replace the
    record of the one whose results the folder holds. Nothing is written outside a Hydra app.
    """
    if not HydraConfig.initialized():
        return
    record = Path(folder) / COMMAND_RECORD
    write_text(record / "config.yaml", OmegaConf.to_yaml(cfg))
    write_text(record / "hydra.yaml", OmegaConf.to_yaml(HydraConfig.instance().cfg))
    write_text(record / "overrides.yaml", OmegaConf.to_yaml(HydraConfig.get().overrides.task))


def close_name(name: str, names: list[str]) -> str:
    """' (did you mean x?)' for the closest of ``names``, or ''."""
    close = difflib.get_close_matches(name, names, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""

"""The data a comparison scores on, fold by fold, and the record that keys a run folder to it.

``data.split`` cuts the dataset into train / val / test: ``official`` (its own split),
``stratified`` (seeded, by ``data.split_fractions``) or ``kfold`` (repeated stratified k-fold),
keeping groups (patients, near duplicates) inside one part. Each cut is a ``Fold`` with its
protocol and a fingerprint of what it evaluates. ``data.json`` in the run folder records the
data settings, fingerprints and protocol settings; a run folder whose results come from other
data, or from other tasks (episodes, labelled subsets) for a setting, is refused.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from medfew.data.dataset import ImageData
from medfew.data.exclusion import exclude_listed
from medfew.data.preprocess import preprocess
from medfew.data.splits import DataSplit, make_splits
from medfew.evaluation.leakage import screen_leakage
from medfew.evaluation.protocols import Protocol
from medfew.evaluation.robustness import Condition
from medfew.evaluation.results import ResultsFile
from medfew.files import write_json
from medfew.hashing import content_hash

log = logging.getLogger(__name__)
RECORD = "data.json"
NO_SPLIT = "all"  # the fold of a protocol that cuts by class (episodes), not by image
ELSEWHERE = "Use another run folder (hydra.run.dir=...) or move that one away; nothing was overwritten"


@dataclass(frozen=True)
class Fold:
    """One train / val / test cut of the data, its protocol and the fingerprint of its data; ``groups``:
    the cut's ``DataSplit.groups`` (over the data before the leakage screen), None when nothing groups."""

    name: str
    data: ImageData
    protocol: Protocol
    data_hash: str
    groups: np.ndarray | None = None


def load_data(data_cfg: DictConfig) -> ImageData:
    """The dataset of ``data_cfg.source`` at ``image_size`` and ``channels``, without the images ``exclude`` lists."""
    check_image_size(data_cfg.image_size)
    data = preprocess(instantiate(data_cfg.source), data_cfg.image_size, data_cfg.channels)
    return exclude_listed(data, data_cfg.exclude) if data_cfg.get("exclude") else data


def check_image_size(size: Any) -> None:
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise ValueError(f"data.image_size must be a positive number of pixels (or null: keep the source's), got {size!r}")


def fingerprint(name: str, data: ImageData) -> str:
    """Fingerprint of a fold: its name, and the images, labels and split of its data, in order."""
    return content_hash(name, data.images, data.labels, data.split if data.split is not None else "no split")


def make_folds(cfg: DictConfig, data: ImageData) -> tuple[list[Fold], dict[str, dict[str, Any]]]:
    """The folds of ``cfg.data.split``, each screened for leakage and with its protocol, and each
    fold's leakage record by fold name."""
    build = instantiate(cfg.protocol, _partial_=True)
    if not build.func.cuts_images:
        if cfg.data.split != "official":
            raise ValueError(
                f"data.split={cfg.data.split} cuts images into train / val / test, but the {cfg.protocol.name} protocol "
                "splits by class (data.class_split); use protocol=label_budget, or leave data.split=official"
            )
        cuts = [DataSplit(NO_SPLIT, data)]
    else:
        cuts = make_splits(data, **split_settings(cfg))
    folds, records = [], {}
    for cut in cuts:
        part, records[cut.name] = screen_leakage(cut.data, cfg.leakage.check, cfg.leakage.threshold)
        folds.append(Fold(cut.name, part, build(data=part), fingerprint(cut.name, part), cut.groups))
    return folds, records


def split_settings(cfg: DictConfig) -> dict[str, Any]:
    """Keyword arguments of ``make_splits`` from the ``data`` config (and the leakage threshold)."""
    data = cfg.data
    return dict(
        split=data.split,
        fractions=OmegaConf.to_container(data.split_fractions),
        folds=data.folds,
        repeats=data.repeats,
        seed=data.split_seed,
        duplicate_threshold=cfg.leakage.threshold,
        group_duplicates=data.group_duplicates,
    )


def warn_missing_classes(folds: Sequence[Fold]) -> str:
    """Log and return the classes a fold's train part has and its test part lacks ('' when none):
    that fold's balanced accuracy and macro-F1 average over the other classes only."""
    found = []
    for fold in folds:
        if fold.protocol.cuts_images:
            labels, split = fold.data.labels.numpy(), fold.data.split
            missing = np.setdiff1d(labels[(split == "train") & (labels >= 0)], labels[split == "test"])
            if len(missing):
                found.append(f"fold {fold.name}: {', '.join(fold.data.class_names[c] for c in missing)}")
    if not found:
        return ""
    note = f"{'; '.join(found)} (in train, not in test: never scored; balanced accuracy and macro-F1 average the classes present)"
    log.warning("classes missing from test: %s", note)
    return note


def record(cfg: DictConfig, folds: Sequence[Fold]) -> dict[str, Any]:
    """What ``data.json`` holds: the data settings, the leakage option, each fold's fingerprint and the protocol settings."""
    settings = OmegaConf.to_container(cfg.data, resolve=True)
    return {
        "data": settings,
        "leakage": OmegaConf.to_container(cfg.leakage),
        "fingerprints": {f.name: f.data_hash for f in folds},
        "protocol": OmegaConf.to_container(cfg.protocol, resolve=True),
    }


def check_run_folder(out: Path, current: dict[str, Any], results: ResultsFile, folds: Sequence[Fold]) -> None:
    """Refuse ``out`` when its results.csv holds rows of other data or of other tasks than ``folds``
    give (``check_tasks``); then record ``current`` in data.json.

    The message names the fingerprints or split hashes and the settings that differ (from the
    data.json written by the run that scored those rows).
    """
    rows, path = results.read(), out / RECORD
    saved = json.loads(path.read_text()) if path.exists() else {}
    wanted = current["fingerprints"]
    foreign = {(row["fold"], row["data_hash"]) for row in rows if wanted.get(row["fold"]) != row["data_hash"]}
    if foreign:
        fold, found = sorted(foreign)[0]
        raise ValueError(
            f"{results.path} holds results of other data: fold '{fold}' has fingerprint {found} there, "
            f"{wanted.get(fold, 'no such fold')} now; {differences(saved, current)}. {ELSEWHERE}"
        )
    check_tasks(results.path, rows, folds, saved, current)
    write_json(path, current)


def check_tasks(path: Path, rows: list[dict[str, str]], folds: Sequence[Fold], saved: dict[str, Any], current: dict[str, Any]) -> None:
    """Refuse ``rows`` (of ``path``, all of the folds' data) scored on other tasks than the protocol now gives.

    Each row's split hash must be the one the protocol gives its (fold, setting, seed) and robustness
    condition, so that a setting never pools two episode sets, labelled subsets, corruptions or label
    flips; and, when data.json recorded the
    protocol, its options must be the same but for the lists of settings (new shots, seeds or
    learners extend a run folder; other n_way, n_query or unlabeled_pool would change every number).
    """
    protocols = {fold.name: fold.protocol for fold in folds}
    blocks = {(r["fold"], r["setting"], r["seed"], Condition.from_row(r), r["split_hash"]) for r in rows}
    for fold, setting, seed, condition, found in sorted(blocks, key=str):
        protocol = protocols[fold]
        drawn = {s.name: s for s in protocol.settings()}
        now = protocol.robustness.split_hash(protocol.split_hash(drawn[setting], int(seed)), condition) if setting in drawn else found
        if found != now:
            same = "the settings are the same, so the tasks drawn from them changed (another medfew version?)"
            where = "" if condition.clean else f", {condition.name}"
            raise ValueError(
                f"{path} holds results of other tasks: fold '{fold}', {setting}{where}, seed {seed} was scored on the episodes or "
                f"labelled images of split hash {found} there, {now} now; {differences(saved, current, same)}. {ELSEWHERE}"
            )
    kept = folds[0].protocol.setting_options
    options = [{k: v for k, v in entry.get("protocol", {}).items() if k not in kept} for entry in (saved, current)]
    if rows and "protocol" in saved and options[0] != options[1]:
        changed = differences({"protocol": options[0]}, {"protocol": options[1]})
        raise ValueError(f"{path} holds results of another protocol: {changed}. {ELSEWHERE}")


def differences(
    saved: dict[str, Any], current: dict[str, Any], same: str = "the settings are the same, so the images or labels on disk changed"
) -> str:
    """'what differs: data.image_size: 28 there, 64 now; ...' between two records; ``same`` when only fingerprints differ."""
    if not saved:
        return f"the folder has no {RECORD} saying how those rows were made"
    changed = [
        f"{key}: {json.dumps(there)} there, {json.dumps(now)} now"
        for key, there, now in flat_diff(saved, current)
        if not key.startswith("fingerprints")
    ]
    if not changed:
        return same
    return "what differs: " + "; ".join(changed)


def flat_diff(a: Any, b: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted key, value in a, value in b) for every leaf where two JSON values differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for key in sorted(a.keys() | b.keys()) for d in flat_diff(a.get(key), b.get(key), f"{prefix}{key}.")]
    return [] if a == b else [(prefix.rstrip("."), a, b)]

"""Seeded, stratified splits: label budgets, class-disjoint base / val / novel classes, and
group-aware train / val / test parts (official, stratified, repeated k-fold) for any dataset."""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor

from medfew.data.audit import DEFAULT_THRESHOLD
from medfew.data.dataset import SPLIT_NAMES, UNLABELED, ImageData
from medfew.data.stratify import allocate, check_class_sizes, check_parts, group_counts, split_groups

SPLITS = ("official", "stratified", "kfold")
DEFAULT_FRACTIONS = {"train": 0.7, "val": 0.1, "test": 0.2}


@dataclass(frozen=True)
class LabelBudget:
    """Indices into a dataset: the labelled images kept and the rest (the unlabeled pool)."""

    labelled: Tensor
    unlabeled: Tensor


def label_budget(
    data: ImageData,
    per_class: int | None = None,
    fraction: float | None = None,
    seed: int = 0,
) -> LabelBudget:
    """Keep ``per_class`` labels per class, or ``fraction`` of each class (at least one).

    Exactly one of ``per_class`` and ``fraction`` is given. Sampling is stratified and
    seeded; every other image (also one that had no label) forms the unlabeled pool.
    """
    if (per_class is None) == (fraction is None):
        raise ValueError("give exactly one of per_class and fraction")
    if fraction is not None and not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    generator = torch.Generator().manual_seed(seed)
    kept = []
    for label, count in enumerate(data.class_counts().tolist()):
        want = per_class if per_class is not None else max(1, round(fraction * count))
        if want > count:
            asked = f"per_class = {want}" if per_class is not None else f"fraction = {fraction:g} labels at least 1"
            raise ValueError(f"{data.name}: class '{data.class_names[label]}' has {count} images; {asked}")
        members = torch.nonzero(data.labels == label).flatten()
        kept.append(members[torch.randperm(count, generator=generator)[:want]])
    labelled = torch.cat(kept).sort().values
    mask = torch.ones(len(data), dtype=torch.bool)
    mask[labelled] = False
    return LabelBudget(labelled=labelled, unlabeled=torch.nonzero(mask).flatten())


@dataclass(frozen=True)
class ClassSplit:
    """Class-disjoint class lists for meta-training, model selection and the final test."""

    base: tuple[str, ...]
    val: tuple[str, ...]
    novel: tuple[str, ...]

    def apply(self, data: ImageData) -> dict[str, ImageData]:
        return {name: data.select_classes(classes) for name, classes in self.__dict__.items() if classes}


def class_split(
    class_names: Sequence[str],
    base: Sequence[str] | int,
    val: Sequence[str] | int,
    novel: Sequence[str] | int,
    seed: int = 0,
) -> ClassSplit:
    """Explicit class lists, or counts drawn by a seeded permutation of ``class_names``.

    Counts and lists cannot be mixed. Lists must be disjoint and name existing classes.
    """
    parts = (base, val, novel)
    if all(isinstance(p, int) for p in parts):
        if sum(parts) > len(class_names):
            raise ValueError(f"base + val + novel = {sum(parts)} classes, but there are {len(class_names)}")
        order = torch.randperm(len(class_names), generator=torch.Generator().manual_seed(seed)).tolist()
        names = [class_names[i] for i in order]
        base, val, novel = names[: parts[0]], names[parts[0] : parts[0] + parts[1]], names[sum(parts[:2]) : sum(parts)]
    elif any(isinstance(p, int) for p in parts):
        raise ValueError("give base, val and novel all as class lists or all as counts")
    seen: dict[str, str] = {}
    for part_name, part in zip(("base", "val", "novel"), (base, val, novel)):
        for c in part:
            if c not in class_names:
                raise KeyError(f"{part_name} class '{c}' is not a class; classes are {list(class_names)}")
            if c in seen:
                raise ValueError(f"class '{c}' is in both {seen[c]} and {part_name}: class splits must be disjoint")
            seen[c] = part_name
    return ClassSplit(tuple(base), tuple(val), tuple(novel))


@dataclass(frozen=True)
class DataSplit:
    """One cut of a dataset into parts: ``data`` is the same images with ``split`` set to train / val / test.

    ``name`` is "official", "stratified" or "repeat<r>-fold<f>" (k-fold cross-validation);
    ``groups`` is each image's group (``stratify.split_groups``), kept inside one part; None for "official".
    """

    name: str
    data: ImageData
    groups: np.ndarray | None = None


def make_splits(
    data: ImageData,
    split: str = "official",
    fractions: Mapping[str, float] | None = None,
    folds: int = 5,
    repeats: int = 1,
    seed: int = 0,
    duplicate_threshold: int | None = DEFAULT_THRESHOLD,
    group_duplicates: bool = True,
) -> list[DataSplit]:
    """Cut ``data`` into train / val / test: its own split, one seeded stratified split, or repeated k-fold.

    Args:
        split: "official" (the data's ``split``, which must hold train and test), "stratified"
            (train / val / test by ``fractions``, stratified by class) or "kfold" (repeated
            stratified k-fold: each fold is the test part once; val is carved from the training
            folds with share val / (train + val) of ``fractions``; each repeat reshuffles).
        fractions: parts' shares, e.g. {train: 0.7, val: 0.1, test: 0.2} (the default);
            val 0 or absent: no val part. kfold reads only train and val.
        folds, repeats: k-fold settings (folds >= 2, repeats >= 1).
        seed: the splits are a function of the images, labels, groups and this seed alone.
        duplicate_threshold: pHash bits within which images count as near duplicates and are
            grouped (the leakage screen's test); None: pixel-identical copies only.
        group_duplicates: False groups by ``data.groups`` only.

    Images sharing a group (``data.groups``, joined with duplicates) never land in two parts.
    Unlabelled images go to train, and so does every group holding one (the shares apply to the
    other groups). Each class must reach every part: too few images or groups raises, naming the
    class, the numbers and its largest group.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split '{split}'; choose one of {', '.join(SPLITS)}")
    if split == "official":
        return [DataSplit("official", official_split(data))]
    if not is_integer(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    shares = split_fractions(fractions, need_test=split == "stratified")
    if not (data.labels != UNLABELED).any():
        raise ValueError(f"{data.name} has no labelled images; val and test parts need labels")
    groups = split_groups(data, duplicate_threshold, group_duplicates)
    if split == "stratified":
        return [DataSplit("stratified", stratified_split(data, groups, shares, seed), groups)]
    return kfold_splits(data, groups, shares, folds, repeats, seed)


def official_split(data: ImageData) -> ImageData:
    """``data`` as it is, when its own split holds train and test."""
    names = data.split_names()
    if not {"train", "test"} <= set(names):
        has = f"only the split(s) {', '.join(names)}" if names else "no official split"
        raise ValueError(
            f"{data.name} has {has}; the official split needs train and test. Set data.split=stratified "
            "(seeded train / val / test by data.split_fractions) or data.split=kfold (k-fold cross-validation)"
        )
    return data


def split_fractions(fractions: Mapping[str, float] | None, need_test: bool) -> dict[str, float]:
    """Checked shares of train, val and test (an absent part: 0)."""
    given = dict(DEFAULT_FRACTIONS if fractions is None else fractions)
    unknown = sorted(set(given) - set(SPLIT_NAMES))
    if unknown:
        raise KeyError(f"split fractions name unknown parts {unknown}; the parts are {', '.join(SPLIT_NAMES)}")
    for part, value in given.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value <= 1:
            raise ValueError(f"split fraction '{part}' must be a number in 0..1, got {value!r}")
    shares = {part: float(given.get(part, 0)) for part in SPLIT_NAMES}
    text = ", ".join(f"{part} {share:g}" for part, share in shares.items())
    if shares["train"] == 0 or need_test and shares["test"] == 0:
        raise ValueError(f"split fractions {text}: train{' and test' if need_test else ''} must be above 0")
    if need_test and abs(sum(shares.values()) - 1) > 1e-6:
        raise ValueError(f"split fractions {text} sum to {sum(shares.values()):g}; they must sum to 1")
    return shares


def stratified_split(data: ImageData, groups: np.ndarray, shares: dict[str, float], seed: int) -> ImageData:
    """One seeded train / val / test assignment of the groups, stratified by class."""
    counts, free = group_counts(data, groups)
    parts = [part for part in SPLIT_NAMES if shares[part] > 0]
    check_class_sizes(data, groups, counts, free, len(parts), f"{', '.join(parts)} need {len(parts)}")
    part = np.zeros(len(counts), dtype=np.int64)  # index into SPLIT_NAMES: train unless assigned
    chosen = allocate(counts[free], np.array([shares[p] for p in parts]), np.random.default_rng([seed]))
    part[free] = np.array([SPLIT_NAMES.index(p) for p in parts])[chosen]
    return with_split(data, "stratified", part[groups], parts, groups)


def kfold_splits(
    data: ImageData, groups: np.ndarray, shares: dict[str, float], folds: int, repeats: int, seed: int
) -> list[DataSplit]:
    """``repeats`` x ``folds`` splits: a fold of groups is test, val is carved from the others."""
    for key, value, low in (("folds", folds, 2), ("repeats", repeats, 1)):
        if not is_integer(value) or value < low:
            raise ValueError(f"{key} must be an integer >= {low}, got {value!r}")
    counts, free = group_counts(data, groups)
    val = shares["val"] / (shares["train"] + shares["val"])
    need = 4 if val and folds == 2 else folds  # a test fold takes up to half of 2 folds; train and val need 2 more
    what = f"folds = {folds}" + (" with a val part need 4" if need > folds else "")
    check_class_sizes(data, groups, counts, free, need, what)
    parts = ["train", "val", "test"] if val else ["train", "test"]
    splits = []
    for repeat in range(repeats):
        fold = np.full(len(counts), -1)
        fold[free] = allocate(counts[free], np.full(folds, 1 / folds), np.random.default_rng([seed, repeat]))
        for f in range(folds):
            part = np.where(fold == f, SPLIT_NAMES.index("test"), SPLIT_NAMES.index("train"))
            rest = np.flatnonzero(free & (fold != f))
            if val:  # allocate's 0 / 1 are train / val, as in SPLIT_NAMES
                part[rest] = allocate(counts[rest], np.array([1 - val, val]), np.random.default_rng([seed, repeat, f]))
            name = f"repeat{repeat}-fold{f}"
            splits.append(DataSplit(name, with_split(data, name, part[groups], parts, groups), groups))
    return splits


def with_split(data: ImageData, name: str, part: np.ndarray, parts: list[str], groups: np.ndarray) -> ImageData:
    """``data`` with ``split`` from (N,) part indices into SPLIT_NAMES, once every class reaches every part."""
    split = np.array(SPLIT_NAMES)[part]
    check_parts(data, name, split, parts, groups)
    return replace(data, split=split)


def is_integer(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)

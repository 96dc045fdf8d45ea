"""Seeded, stratified splits: label budgets and class-disjoint base / val / novel classes."""

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from medfew.data.dataset import ImageData


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
            raise ValueError(
                f"{data.name}: class '{data.class_names[label]}' has {count} images; per_class = {want}"
            )
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

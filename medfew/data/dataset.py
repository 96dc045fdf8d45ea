"""The one in-memory representation every source loads into and every learner reads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import Tensor

UNLABELED = -1
SPLIT_NAMES = ("train", "val", "test")


@dataclass(frozen=True)
class ImageData:
    """A whole small dataset held in memory.

    Attributes:
        images: (N, C, H, W) uint8 tensor, C in {1, 3}.
        labels: (N,) int64 tensor of class indices, or ``UNLABELED`` (-1).
        class_names: name of each class index.
        split: (N,) array of split names ("train", "val", "test") or None.
        groups: optional (N,) int64 tensor of patient / group ids.
        name: where the data came from (file or folder), used in error messages.
        source: provenance and licence text.
        filenames: optional (N,) array of each image's path in its source (for reports).
    """

    images: Tensor
    labels: Tensor
    class_names: tuple[str, ...]
    split: np.ndarray | None = None
    groups: Tensor | None = None
    name: str = "data"
    source: str = field(default="", compare=False)
    filenames: np.ndarray | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(
                f"{self.name}: images must be a uint8 N x C x H x W tensor, "
                f"got {self.images.dtype} with shape {tuple(self.images.shape)}"
            )
        if self.images.shape[1] not in (1, 3):
            raise ValueError(f"{self.name}: images have {self.images.shape[1]} channels; expected 1 or 3")
        if 0 in self.images.shape[2:]:
            raise ValueError(f"{self.name}: images are {tuple(self.images.shape[2:])} pixels; expected at least 1 x 1")
        n = len(self.images)
        columns = {"labels": self.labels, "split": self.split, "groups": self.groups, "filenames": self.filenames}
        for key, value in columns.items():
            if value is not None and len(value) != n:
                raise ValueError(f"{self.name}: {n} images but {len(value)} {key}")
        check_labels(self)
        if self.split is not None:
            check_split(self)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def class_counts(self) -> Tensor:
        """(n_classes,) number of labelled images per class."""
        return torch.bincount(self.labels[self.labels != UNLABELED], minlength=self.n_classes)

    def subset(self, indices: Tensor | Sequence[int]) -> ImageData:
        """The images at ``indices`` (class names unchanged)."""
        indices = torch.as_tensor(indices, dtype=torch.long)
        return ImageData(
            images=self.images[indices],
            labels=self.labels[indices],
            class_names=self.class_names,
            split=None if self.split is None else self.split[indices.numpy()],
            groups=None if self.groups is None else self.groups[indices],
            name=self.name,
            source=self.source,
            filenames=None if self.filenames is None else self.filenames[indices.numpy()],
        )

    def split_names(self) -> list[str]:
        return [] if self.split is None else sorted(set(self.split.tolist()))

    def select_split(self, name: str) -> ImageData:
        """The images of one official split ("train", "val", "test")."""
        if name not in self.split_names():
            raise KeyError(f"{self.name} has no split '{name}'; it has: {self.split_names() or 'none'}")
        return self.subset(torch.from_numpy(np.flatnonzero(self.split == name)))

    def select_classes(self, names: Sequence[str]) -> ImageData:
        """Only the images of ``names``, relabelled 0..len(names)-1 in that order."""
        unknown = [c for c in names if c not in self.class_names]
        if unknown:
            raise KeyError(f"{self.name}: unknown classes {unknown}; classes are {list(self.class_names)}")
        old = torch.tensor([self.class_names.index(c) for c in names])
        keep = torch.isin(self.labels, old)
        data = self.subset(torch.nonzero(keep).flatten())
        remap = torch.full((self.n_classes,), UNLABELED, dtype=torch.long)
        remap[old] = torch.arange(len(old))
        return replace(data, labels=remap[data.labels], class_names=tuple(names))

    def unlabeled(self) -> ImageData:
        """The same images with every label (and the split) removed: a pretraining pool."""
        return replace(self, labels=torch.full_like(self.labels, UNLABELED), split=None)


def check_labels(data: ImageData) -> None:
    """Class names are unique; every label is a class index or ``UNLABELED`` (errors name the first that is not)."""
    repeated = sorted({c for c in data.class_names if data.class_names.count(c) > 1})
    if repeated:
        raise ValueError(f"{data.name}: class names {repeated} appear more than once in class_names")
    below = torch.nonzero(data.labels < UNLABELED).flatten()
    if len(below):
        first = below[0].item()
        raise ValueError(
            f"{data.name}: {len(below)} labels are below -1 (first at index {first}: {data.labels[first].item()}); "
            f"a label is a class index 0..{data.n_classes - 1} or -1 (UNLABELED)"
        )
    above = torch.nonzero(data.labels >= data.n_classes).flatten()
    if len(above):
        raise ValueError(
            f"{data.name}: label value {data.labels[above[0]].item()} is outside class_names "
            f"(0..{data.n_classes - 1}: {', '.join(data.class_names)})"
        )


def check_split(data: ImageData) -> None:
    """Split names are train / val / test, and every val / test image has a label (to be scored)."""
    values, counts = np.unique(np.asarray(data.split).astype(str), return_counts=True)
    unknown = [f"'{v}' ({c} images)" for v, c in zip(values.tolist(), counts.tolist()) if v not in SPLIT_NAMES]
    if unknown:
        raise ValueError(
            f"{data.name}: unknown split values {', '.join(unknown)}; valid splits are {', '.join(SPLIT_NAMES)}"
        )
    scored = np.isin(data.split, ("val", "test")) & (data.labels == UNLABELED).numpy()
    if scored.any():
        first = int(np.flatnonzero(scored)[0])
        raise ValueError(
            f"{data.name}: {scored.sum()} unlabelled images (label -1) in val / test (first at index {first}, "
            f"split '{data.split[first]}'); they cannot be scored: label them or move them to train"
        )


def group_codes(ids: Sequence[object | None]) -> Tensor | None:
    """Integer group per image: equal ids share one (codes in sorted id order); a None id gets
    a group of its own. None when no image has an id."""
    known = sorted({i for i in ids if i is not None})
    if not known:
        return None
    code = {key: n for n, key in enumerate(known)}
    extra = iter(range(len(known), len(known) + len(ids)))
    return torch.tensor([code[i] if i is not None else next(extra) for i in ids], dtype=torch.long)


def concat_groups(parts: Sequence[ImageData]) -> Tensor | None:
    """The parts' groups as one set of codes: each part's own (a part without groups: one per image),
    shifted past the codes before it, so that patient 0 of two datasets stays two patients."""
    if all(p.groups is None for p in parts):
        return None
    codes, offset = [], 0
    for part in parts:
        groups = torch.arange(len(part)) if part.groups is None else part.groups
        codes.append(groups + offset)
        offset += int(groups.max()) + 1 if len(groups) else 0
    return torch.cat(codes)


def concat(parts: Sequence[ImageData], name: str | None = None) -> ImageData:
    """Stack datasets of the same channels and image size; classes are the union, by name."""
    first = parts[0]
    for part in parts[1:]:
        if part.images.shape[1:] != first.images.shape[1:]:
            raise ValueError(
                f"cannot concat {part.name}: image shape {tuple(part.images.shape[1:])} "
                f"!= {tuple(first.images.shape[1:])}; resize them to one size and channel count first"
            )
    class_names = tuple(dict.fromkeys(c for p in parts for c in p.class_names))
    labels = []
    for part in parts:
        remap = torch.tensor([class_names.index(c) for c in part.class_names] + [UNLABELED])
        labels.append(remap[part.labels])  # UNLABELED (-1) indexes the appended -1
    has_split = all(p.split is not None for p in parts)
    has_filenames = all(p.filenames is not None for p in parts)
    return ImageData(
        images=torch.cat([p.images for p in parts]),
        labels=torch.cat(labels),
        class_names=class_names,
        split=np.concatenate([p.split for p in parts]) if has_split else None,
        groups=concat_groups(parts),
        name=name or "+".join(p.name for p in parts),
        filenames=np.concatenate([p.filenames for p in parts]) if has_filenames else None,
    )

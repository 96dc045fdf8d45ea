"""Group-aware stratified assignment of images to parts (the machinery of ``splits.make_splits``).

Groups are connected components: images sharing a ``data.groups`` id (a patient) or being
duplicates (pixel-identical, or pHash within a threshold: the leakage audit's test) are one
group. Groups are numbered in content order (by their images' sha256), so an assignment depends
on the images and the seed, never on the order the images were loaded in.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_array
from scipy.sparse.csgraph import connected_components

from medfew.data.audit import duplicate_pairs, image_digests
from medfew.data.dataset import UNLABELED, ImageData


def split_groups(data: ImageData, threshold: int | None, duplicates: bool) -> np.ndarray:
    """(N,) group per image, 0..G-1 in content order: ``data.groups`` joined with duplicates when ``duplicates``."""
    n = len(data)
    edges = [np.stack([np.arange(n), np.arange(n)], axis=1)]
    if data.groups is not None:  # image i -- node n + its group's code
        codes = np.unique(data.groups.numpy(), return_inverse=True)[1].reshape(-1)
        edges.append(np.stack([np.arange(n), n + codes], axis=1))
    if duplicates:
        edges.append(duplicate_pairs(data.images, threshold))
    edges = np.concatenate(edges)
    graph = coo_array((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(2 * n, 2 * n))
    _, component = connected_components(graph, directed=False)
    digests = image_digests(data.images)
    first_seen = list(dict.fromkeys(component[sorted(range(n), key=digests.__getitem__)].tolist()))
    rank = np.empty(component.max() + 1, dtype=np.int64)
    rank[first_seen] = np.arange(len(first_seen))
    return rank[component[:n]]


def describe_groups(data: ImageData, groups: np.ndarray, duplicates: bool, kept: str) -> str:
    """'120 images in 40 groups (patients, near duplicates), <kept>' for ``split_groups``' ``groups``, or why
    every image is its own group."""
    n_groups = len(np.unique(groups))
    patients = data.groups is not None
    if n_groups < len(groups):
        by = ", ".join(["patients"] * patients + ["near duplicates"] * duplicates)
        return f"{len(groups)} images in {n_groups} groups ({by}), {kept}"
    why = "one image per patient id" if patients else "no patient ids (data.groups, a groups.csv or DICOM PatientID)"
    return f"every image is its own group: {why}{' and no near duplicates' if duplicates else ''}"


def group_counts(data: ImageData, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(G, C) labelled images per group and class, and (G,) True for groups free to leave train
    (those holding no unlabelled image)."""
    labels = data.labels.numpy()
    labelled = labels != UNLABELED
    counts = np.zeros((groups.max() + 1, data.n_classes), dtype=np.int64)
    np.add.at(counts, (groups[labelled], labels[labelled]), 1)
    free = np.ones(len(counts), dtype=bool)
    free[groups[~labelled]] = False
    return counts, free


def allocate(counts: np.ndarray, shares: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(G,) part (index into ``shares``) of each group with (G, C) class ``counts``, stratified by class.

    A greedy like scikit-learn's StratifiedGroupKFold, for any shares: groups go largest first
    (ties in seeded random order) to a part still lacking one of their classes, else to the part
    furthest below its share of their classes. With single-class groups every part gets every
    class that has a group per part; with one image per group a part holds its share of each
    class to within ``len(shares) - 1`` images (exactly, when share x class size is whole).
    """
    totals = counts.sum(0)
    target = shares[:, None] * totals
    filled = np.zeros_like(target)
    order = rng.permutation(len(counts))
    order = order[np.argsort(-counts[order].sum(1), kind="stable")]
    part = np.empty(len(counts), dtype=np.int64)
    for g in order:
        lacking = ((filled == 0) & (counts[g] > 0)).sum(1)
        shortfall = ((target - filled) / np.maximum(totals, 1)) @ counts[g]
        part[g] = np.lexsort((-shortfall, -lacking))[0]
        filled[part[g]] += counts[g]
    return part


def check_class_sizes(
    data: ImageData, groups: np.ndarray, counts: np.ndarray, free: np.ndarray, need: int, what: str
) -> None:
    """Each class needs ``need`` images in ``need`` free groups; the error names the class, the numbers and
    its largest group (``what`` says what needs them)."""
    for k, name in enumerate(data.class_names):
        images, spread = counts[:, k].sum(), (counts[free, k] > 0).sum()
        if images < need:
            raise ValueError(f"{data.name}: class '{name}' has {images} images; {what}")
        if spread < need:
            pinned = counts[~free, k].sum()
            held = f" ({pinned} of them in groups with unlabelled images, which stay in train)" if pinned else ""
            raise ValueError(
                f"{data.name}: class '{name}' has {images} images in {spread} groups that can leave train{held}; "
                f"{what} (a group's images stay in one part); {describe_group(data, groups, counts[:, k].argmax(), k)}"
            )


def check_parts(data: ImageData, name: str, split: np.ndarray, parts: list[str], groups: np.ndarray) -> None:
    """Every class has images in each of ``parts``; else the error names the split, class, part and groups."""
    labels = data.labels.numpy()
    for k, class_name in enumerate(data.class_names):
        for part in parts:
            if not ((labels == k) & (split == part)).any():
                counts = np.bincount(groups[labels == k])
                raise ValueError(
                    f"{data.name} ({name}): class '{class_name}' got no {part} images: its {counts.sum()} images lie in "
                    f"{(counts > 0).sum()} groups, which also hold other classes and went to other parts "
                    f"({describe_group(data, groups, counts.argmax(), k)}); try another split seed or fewer parts"
                )


def describe_group(data: ImageData, groups: np.ndarray, group: int, label: int) -> str:
    """'its largest group, that of scan3.dcm, holds 9 of its images (12 in all: same data.groups id or duplicates)'."""
    members = np.flatnonzero(groups == group)
    first = members[0]
    where = data.filenames[first] if data.filenames is not None else f"image {first}"
    of_class = int((data.labels[members] == label).sum())
    return (
        f"its largest group, that of {where}, holds {of_class} of its images "
        f"({len(members)} in all: same data.groups id or duplicates)"
    )

"""Leakage audit: exact and near-duplicate images across train / val / test splits.

Exact duplicates have identical pixels (sha256 of the uint8 image bytes). Near duplicates
have 64-bit perceptual hashes (pHash: signs of the 8 x 8 lowest DCT terms of a 32 x 32 grey
thumbnail against their median; N. Krawetz, "Looks Like It", hackerfactor.com 2011, as
implemented by ``imagehash``) within a Hamming distance ``threshold``. All cross-split distances come from one matrix product
of +-1 hash codes (``hamming = (64 - a @ b.T) / 2``), chunked, so thousands of images
take seconds.
"""

from __future__ import annotations

import hashlib
import numbers
from collections import defaultdict
from dataclasses import dataclass

import imagehash
import numpy as np
import torch
from PIL import Image
from torch import Tensor

from medfew.data.dataset import UNLABELED, ImageData

# pHash sets the bits above the median of 64 DCT terms, so codes hold 32 ones and distances
# are even. On Brain MRI, train-test pairs within 4 bits looked like the same scan (re-encoded,
# re-windowed or slightly cropped; 1619 of 1622 pairs share a label); from 6 bits on, different slices start.
DEFAULT_THRESHOLD = 4
HASH_BITS = 64


@dataclass(frozen=True)
class DuplicateReport:
    """Cross-split duplicate pairs, one entry per pair; ``first`` lies in the earlier split.

    Attributes:
        first, second: (P,) int64 indices into the audited data.
        distance: (P,) int64 pHash Hamming distance (0..64).
        exact: (P,) bool, True when the two images are pixel-identical.
        splits: (P, 2) split names of the pair.
        filenames: (P, 2) file names of the pair, or None when the data has none.
        threshold: the near-duplicate threshold used (None: exact duplicates only).
    """

    first: Tensor
    second: Tensor
    distance: Tensor
    exact: Tensor
    splits: np.ndarray
    filenames: np.ndarray | None
    threshold: int | None

    def __len__(self) -> int:
        return len(self.first)

    def counts(self) -> dict[str, int]:
        """Pair counts (exact, near) overall and per split pair, and images involved per split."""
        counts = {"exact_pairs": int(self.exact.sum()), "near_pairs": int((~self.exact).sum())}
        for a, b in sorted({tuple(pair) for pair in self.splits.tolist()}):
            in_pair = torch.from_numpy((self.splits[:, 0] == a) & (self.splits[:, 1] == b))
            counts[f"{a}-{b}/exact_pairs"] = int((in_pair & self.exact).sum())
            counts[f"{a}-{b}/near_pairs"] = int((in_pair & ~self.exact).sum())
        index, split = torch.cat([self.first, self.second]), np.concatenate([self.splits[:, 0], self.splits[:, 1]])
        for name in dict.fromkeys(split.tolist()):
            counts[f"{name}/images_involved"] = len(index[torch.from_numpy(split == name)].unique())
        return counts

    def rows(self) -> list[dict[str, object]]:
        """One dict per pair, for a CSV."""
        rows = []
        for p in range(len(self)):
            row = {
                "kind": "exact" if self.exact[p] else "near",
                "distance": int(self.distance[p]),
                "first": int(self.first[p]),
                "second": int(self.second[p]),
                "first_split": self.splits[p, 0],
                "second_split": self.splits[p, 1],
            }
            if self.filenames is not None:
                row |= {"first_file": self.filenames[p, 0], "second_file": self.filenames[p, 1]}
            rows.append(row)
        return rows


PHASHES: dict[bytes, np.ndarray] = {}  # image sha256 -> its pHash bits: each fold's audit re-hashes the same images


def perceptual_hashes(images: Tensor) -> Tensor:
    """(N, C, H, W) uint8, grey or RGB -> (N, 64) bool pHash bits (RGB is converted to grey by Pillow)."""
    digests = image_digests(images)
    for digest, image in zip(digests, images.permute(0, 2, 3, 1).numpy()):
        if digest not in PHASHES:
            PHASHES[digest] = imagehash.phash(Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)).hash
    return torch.from_numpy(np.array([PHASHES[d] for d in digests], dtype=bool).reshape(len(digests), HASH_BITS))


def image_digests(images: Tensor) -> list[bytes]:
    """sha256 of each image's shape and uint8 bytes: equal digests mean pixel-identical images."""
    shape = str(tuple(images.shape[1:])).encode()
    return [hashlib.sha256(shape + image.tobytes()).digest() for image in images.numpy()]


def exact_groups(images: Tensor) -> list[list[int]]:
    """Indices of pixel-identical images, one list per set of two or more."""
    groups: dict[bytes, list[int]] = defaultdict(list)
    for i, digest in enumerate(image_digests(images)):
        groups[digest].append(i)
    return [members for members in groups.values() if len(members) > 1]


def label_conflicts(data: ImageData) -> list[list[int]]:
    """Indices of pixel-identical labelled images that carry more than one label, one list per set."""
    labelled = torch.nonzero(data.labels != UNLABELED).flatten()
    sets = [labelled[members] for members in exact_groups(data.images[labelled])]
    return [members.tolist() for members in sets if data.labels[members].unique().numel() > 1]


def hamming_pairs(bits: Tensor, rows: Tensor, cols: Tensor, threshold: int, chunk: int = 4096) -> Tensor:
    """(P, 3) [row index, col index, distance] of hash pairs within ``threshold`` bits."""
    signs = bits.float() * 2 - 1
    right = signs[cols]
    found = []
    for start in range(0, len(rows), chunk):
        block = rows[start : start + chunk]
        distance = ((HASH_BITS - signs[block] @ right.T) / 2).round().long()
        r, c = torch.nonzero(distance <= threshold, as_tuple=True)
        found.append(torch.stack([block[r], cols[c], distance[r, c]], dim=1))
    return torch.cat(found) if found else torch.empty(0, 3, dtype=torch.long)


def near_pairs(bits: Tensor, rank: Tensor, n_splits: int, threshold: int) -> set[tuple[int, int]]:
    """(i, j) with rank[i] < rank[j] and hashes within ``threshold`` bits, over every split pair."""
    pairs = set()
    for a in range(n_splits):
        for b in range(a + 1, n_splits):
            rows, cols = torch.nonzero(rank == a).flatten(), torch.nonzero(rank == b).flatten()
            pairs.update((i, j) for i, j, _ in hamming_pairs(bits, rows, cols, threshold).tolist())
    return pairs


def duplicate_pairs(images: Tensor, threshold: int | None = DEFAULT_THRESHOLD) -> np.ndarray:
    """(P, 2) index pairs that link every set of duplicates: pixel-identical images and, unless
    ``threshold`` is None, images whose pHashes lie within ``threshold`` bits.

    Not every pair: each copy is paired with the first image of its set, and near duplicates are
    searched among those first images only, so a thousand blank images cost a thousand pairs.
    """
    check_threshold(threshold)
    pairs = [(members[0], copy) for members in exact_groups(images) for copy in members[1:]]
    if threshold is not None:
        copies = {copy for _, copy in pairs}
        kept = torch.tensor([i for i in range(len(images)) if i not in copies], dtype=torch.long)
        every = torch.arange(len(kept))
        near = hamming_pairs(perceptual_hashes(images[kept]), every, every, threshold)[:, :2]
        pairs += kept[near[near[:, 0] < near[:, 1]]].tolist()
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def check_threshold(threshold: int | None) -> None:
    if threshold is not None and (not isinstance(threshold, numbers.Integral) or not 0 <= threshold < HASH_BITS):
        raise ValueError(f"threshold must be in 0..{HASH_BITS - 1} bits (or None: exact copies only), got {threshold}")


def split_order(data: ImageData) -> list[str]:
    """Split names in train, val, test order (others after, sorted)."""
    names = data.split_names()
    known = [s for s in ("train", "val", "test") if s in names]
    return known + [s for s in names if s not in known]


def audit_duplicates(data: ImageData, threshold: int | None = DEFAULT_THRESHOLD) -> DuplicateReport:
    """Find exact (and, unless ``threshold`` is None, near) duplicates between different splits.

    A pair is reported once, with ``first`` in the split that comes first in train, val,
    test order. Pairs within one split are not leakage and are not reported. Data with one
    split or none has no leakage to find; its duplicates within are reported instead, as the
    pairs that link each set (``duplicate_pairs``), in the split ``"all"`` when it has none.
    """
    check_threshold(threshold)
    bits = None if threshold is None else perceptual_hashes(data.images)
    if len(data.split_names()) < 2:
        splits = np.full(len(data), "all") if data.split is None else data.split
        pairs = [tuple(pair) for pair in duplicate_pairs(data.images, threshold).tolist()]
        digests = image_digests(data.images)
        return duplicate_report(data, pairs, [digests[i] == digests[j] for i, j in pairs], splits, bits, threshold)
    order = split_order(data)
    rank = [order.index(s) for s in data.split.tolist()]
    exact = {(i, j) for members in exact_groups(data.images) for i in members for j in members if rank[i] < rank[j]}
    pairs = exact if bits is None else exact | near_pairs(bits, torch.tensor(rank), len(order), threshold)
    ordered = sorted(pairs, key=lambda p: (rank[p[0]], rank[p[1]], p))
    return duplicate_report(data, ordered, [p in exact for p in ordered], data.split, bits, threshold)


def duplicate_report(
    data: ImageData, pairs: list[tuple[int, int]], exact: list[bool], splits: np.ndarray, bits: Tensor | None, threshold: int | None
) -> DuplicateReport:
    """The report of index ``pairs`` into ``data`` (``exact``: pixel-identical, per pair; ``splits``: per image)."""
    first = torch.tensor([p[0] for p in pairs], dtype=torch.long)
    second = torch.tensor([p[1] for p in pairs], dtype=torch.long)
    distance = torch.zeros(len(first), dtype=torch.long) if bits is None else (bits[first] != bits[second]).sum(1)
    index = torch.stack([first, second], dim=1).numpy()
    return DuplicateReport(
        first=first,
        second=second,
        distance=distance,
        exact=torch.tensor(exact, dtype=torch.bool),
        splits=splits[index].reshape(-1, 2),
        filenames=None if data.filenames is None else data.filenames[index].reshape(-1, 2),
        threshold=threshold,
    )


def duplicate_indices(data: ImageData, against: str = "train", threshold: int | None = DEFAULT_THRESHOLD) -> Tensor:
    """Sorted indices of images outside split ``against`` that duplicate an image in it.

    Dropping them (``data.subset`` of the complement) removes train-test leakage; with
    ``threshold=None`` only pixel-identical copies count.
    """
    if against not in data.split_names():
        raise KeyError(f"{data.name} has no split '{against}'; it has: {data.split_names() or 'none'}")
    report = audit_duplicates(data, threshold)
    in_first = torch.from_numpy(report.splits[:, 0] == against)
    in_second = torch.from_numpy(report.splits[:, 1] == against)
    return torch.cat([report.second[in_first], report.first[in_second]]).unique()

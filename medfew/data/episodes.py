"""N-way K-shot Q-query episodes drawn from in-memory data with a seeded generator.

learn2learn's task transforms (NWays, KShots) draw from Python's global ``random``
state and load images one by one; these samplers draw from a ``torch.Generator`` (so
two samplers never disturb each other) and gather a whole episode with one index.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from medfew.data.dataset import ImageData


@dataclass(frozen=True)
class Episode:
    """One few-shot task; labels are 0..n_way-1 in the order of ``classes``.

    Attributes:
        support: (n_way * n_shot, C, H, W) float images in [0, 1].
        support_labels: (n_way * n_shot,) int64.
        query: (n_way * n_query, C, H, W) float images in [0, 1].
        query_labels: (n_way * n_query,) int64.
        classes: (n_way,) class index in the source data of each episode label.
    """

    support: Tensor
    support_labels: Tensor
    query: Tensor
    query_labels: Tensor
    classes: Tensor

    @property
    def n_way(self) -> int:
        return len(self.classes)


@dataclass(frozen=True)
class EpisodeIndices:
    """Where an episode's images sit in its dataset: (n_way, n_shot) and (n_way, n_query)."""

    support: Tensor
    query: Tensor
    classes: Tensor


def to_float(images: Tensor) -> Tensor:
    """uint8 images -> float32 in [0, 1]."""
    return images.float().div_(255)


class EpisodeSampler:
    """Draws class-balanced episodes: n_way classes, n_shot + n_query images of each.

    Every class of ``data`` must hold at least n_shot + n_query labelled images, so a
    learner sees the same budgets whatever the raw class frequencies. With ``groups`` ((N,)
    ids: a patient and its near duplicates), no query image shares a group with a support
    image of its episode; each class's images are drawn in the same random order as without,
    and a query that would share a group is replaced by the next one in that order.
    """

    def __init__(
        self, data: ImageData, n_way: int, n_shot: int, n_query: int, device: str | None = None, groups: Tensor | None = None
    ) -> None:
        if min(n_shot, n_query) < 1:
            raise ValueError(f"n_shot and n_query must be >= 1, got {n_shot}, {n_query}")
        counts = data.class_counts()
        present = [c for c in range(data.n_classes) if counts[c] > 0]
        names = ", ".join(data.class_names[c] for c in present)
        if n_way < 2:
            raise ValueError(
                f"n_way = {n_way}: an episode needs 2 classes or more, else every answer is right "
                f"({data.name} has {len(present)}: {names})"
            )
        if n_way > len(present):
            raise ValueError(f"n_way = {n_way} but {data.name} has {len(present)} classes: {names}")
        for c in present:
            if counts[c] < n_shot + n_query:
                raise ValueError(
                    f"{data.name}: class '{data.class_names[c]}' has {counts[c]} images; "
                    f"n_shot + n_query = {n_shot + n_query}"
                )
        self.data = data
        self.n_way, self.n_shot, self.n_query = n_way, n_shot, n_query
        self.classes = torch.tensor(present)
        self.members = [torch.nonzero(data.labels == c).flatten() for c in present]
        self.images = data.images.to(device) if device else data.images
        self.groups = groups

    def sample_indices(self, generator: torch.Generator) -> EpisodeIndices:
        chosen = torch.randperm(len(self.classes), generator=generator)[: self.n_way].tolist()
        orders = [self.members[c][torch.randperm(len(self.members[c]), generator=generator)] for c in chosen]
        support = torch.stack([order[: self.n_shot] for order in orders])
        if self.groups is None:
            query = torch.stack([order[self.n_shot : self.n_shot + self.n_query] for order in orders])
        else:
            taken = set(self.groups[support.flatten()].tolist())
            query = torch.stack([self.apart(order[self.n_shot :], taken, c) for order, c in zip(orders, chosen)])
        return EpisodeIndices(support, query, self.classes[chosen])

    def apart(self, candidates: Tensor, taken: set[int], c: int) -> Tensor:
        """The first n_query of ``candidates`` whose group is not in ``taken``."""
        query = candidates[[g not in taken for g in self.groups[candidates].tolist()]][: self.n_query]
        if len(query) < self.n_query:
            name, groups = self.data.class_names[self.classes[c]], set(self.groups[self.members[c]].tolist())
            raise ValueError(
                f"{self.data.name}: class '{name}' has {len(self.members[c])} images in {len(groups)} groups (patients, "
                f"near duplicates); an episode's support holds {len(groups & taken)} of them, which leaves {len(query)} "
                f"images to query, fewer than n_query = {self.n_query}: use fewer shots or queries"
            )
        return query

    def load(self, indices: EpisodeIndices) -> Episode:
        device = self.images.device
        n_way = len(indices.classes)

        def gather(idx: Tensor) -> tuple[Tensor, Tensor]:
            # index_select is several times faster than advanced indexing for a 1-D index
            images = to_float(self.images.index_select(0, idx.reshape(-1).to(device)))
            labels = torch.arange(n_way, device=device).repeat_interleave(idx.shape[1])
            return images, labels

        support, support_labels = gather(indices.support)
        query, query_labels = gather(indices.query)
        return Episode(support, support_labels, query, query_labels, indices.classes)

    def __iter__(self) -> Iterator[Episode]:
        """Endless episodes from an unseeded generator; use ``episodes(seed)`` to reproduce."""
        return self.episodes(torch.Generator().seed())  # torch.seed() would reseed the global RNG

    def episodes(self, seed: int) -> Iterator[Episode]:
        generator = torch.Generator().manual_seed(seed)
        while True:
            yield self.load(self.sample_indices(generator))


class EpisodeSet:
    """A fixed list of episodes that every learner sees identically, identified by ``hash``."""

    def __init__(self, sampler: EpisodeSampler, indices: list[EpisodeIndices]) -> None:
        self.sampler = sampler
        self.indices = indices

    @classmethod
    def draw(
        cls, data: ImageData, n_way: int, n_shot: int, n_query: int, n_episodes: int, seed: int = 0, groups: Tensor | None = None
    ) -> EpisodeSet:
        sampler = EpisodeSampler(data, n_way, n_shot, n_query, groups=groups)
        generator = torch.Generator().manual_seed(seed)
        return cls(sampler, [sampler.sample_indices(generator) for _ in range(n_episodes)])

    @property
    def hash(self) -> str:
        """sha256 (first 16 hex digits) of the dataset name and every episode's indices."""
        digest = hashlib.sha256(self.sampler.data.name.encode())
        for ep in self.indices:
            for part in (ep.classes, ep.support, ep.query):
                digest.update(part.numpy().astype("int64").tobytes())
        return digest.hexdigest()[:16]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Episode:
        return self.sampler.load(self.indices[i])

    def __iter__(self) -> Iterator[Episode]:
        return (self.sampler.load(ep) for ep in self.indices)

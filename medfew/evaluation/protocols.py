"""The two evaluation protocols: fixed few-shot episodes on novel classes, and label budgets.

A protocol lists its settings (shots, labels per class, label fraction), says what a
learner may see before its tasks (``PrepareContext``) and yields the tasks of one
(setting, seed) with a hash that identifies exactly which images they hold, so every
learner is scored on identical data and every result row can prove it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from medfew.data.dataset import ImageData, concat
from medfew.data.episodes import EpisodeSet, to_float
from medfew.data import splits
from medfew.data.stratify import describe_groups, split_groups
from medfew.evaluation.robustness import SEVERITY_LEVELS, Robustness
from medfew.hashing import content_hash
from medfew.learners.base import PrepareContext

MONITOR_IMAGES = 512  # most labelled images an SSL monitor scores per epoch (a seeded sample of more)
#: robustness options (``Robustness``): a run folder may grow along them; a changed flip rule changes the split hashes
ROBUSTNESS_OPTIONS = ("corruptions", "severities", "label_noise", "label_noise_mode")


@dataclass(frozen=True)
class Setting:
    """One point on the label-efficiency axis: ``kind`` is shots, per_class or fraction."""

    kind: str
    value: float

    @property
    def name(self) -> str:
        return f"{self.kind}={self.value:g}"


@dataclass(frozen=True)
class Task:
    """One support / query problem; labels are 0..n_way-1 naming ``classes`` in order.

    Attributes:
        support: (n_support, C, H, W) float in [0, 1]; support_labels (n_support,).
        query: (n_query, C, H, W) float in [0, 1]; query_labels (n_query,).
        classes: source class name of each label.
        val: (images, labels) for early stopping, or None.
        episode: index of the task within its (setting, seed).
    """

    support: Tensor
    support_labels: Tensor
    query: Tensor
    query_labels: Tensor
    classes: tuple[str, ...]
    val: tuple[Tensor, Tensor] | None = None
    episode: int = 0


class Protocol(ABC):
    """Settings, prepare contexts and tasks of one evaluation protocol over one dataset."""

    #: how result rows and run folders call this protocol (a config key, so variants can differ)
    name: str
    #: True when one ``prepare`` per seed serves every setting (its context ignores the setting).
    shares_prepare: bool
    #: True when the protocol scores on the data's train / val / test parts (``data.split`` cuts them).
    cuts_images: bool
    #: the options that list its settings: a run folder may grow along them, never change in the others
    setting_options: tuple[str, ...]
    #: True when pretraining may see the test images (without labels)
    transductive: bool = False
    #: the conditions scored besides the clean one: corrupted query images, flipped training labels
    robustness: Robustness = Robustness()

    @abstractmethod
    def settings(self) -> list[Setting]: ...

    @abstractmethod
    def context(self, setting: Setting, seed: int, workdir: Path) -> PrepareContext:
        """What a learner may use before the tasks of (setting, seed); checkpoints under workdir."""

    @abstractmethod
    def split_hash(self, setting: Setting, seed: int) -> str:
        """Identifies every image index the tasks of (setting, seed) use."""

    @abstractmethod
    def classes(self) -> dict[str, list[str]]:
        """The class names this protocol uses, by role (for the summary)."""

    @abstractmethod
    def n_tasks(self, setting: Setting) -> int:
        """How many tasks ``tasks`` yields for ``setting`` (for progress)."""

    @abstractmethod
    def tasks(self, setting: Setting, seed: int, device: str | torch.device = "cpu") -> Iterator[Task]: ...

    def budget(self, setting: Setting) -> tuple[int, int] | None:
        """(labelled images, images they are drawn from) behind ``setting``, where the protocol draws a
        labelled subset whose size is not the setting's value itself; else None."""
        return None


class EpisodesProtocol(Protocol):
    """Fixed N-way K-shot episode sets on novel classes, one per K, drawn once from ``episode_seed``.

    Learners prepare on the base classes (``base``), the val classes (``val``) and their
    images without labels (``unlabeled``); novel classes are never seen before the tasks,
    unless ``novel_unlabeled`` > 0: that share of each novel class's images (by patient, see
    ``hold_out``; drawn from ``episode_seed``) joins ``unlabeled`` without labels and never appears in an
    episode (unlabeled scans of the target domain, as in STARTUP, Phoo & Hariharan 2021,
    https://arxiv.org/abs/2012.05899). Seeds vary the learners (init, pretraining), never the episodes.

    Args:
        data: the whole labelled dataset.
        class_split: base / val / novel class lists or counts (``medfew.data.class_split``).
        shots: K of each episode set; n_way: classes per episode (None: every novel class);
        n_query: query images per class; n_episodes: episodes per K; episode_seed: draws
            the class split (when given as counts), the novel images held out unlabeled and the episodes.
        novel_unlabeled: share of each novel class's images given to learners without labels, in [0, 1).
        group_duplicates, duplicate_threshold: images of one patient (``data.groups``) and, with
            ``group_duplicates``, near duplicates (pHash within the threshold) are one group, and no
            query image shares a group with its episode's support (``EpisodeSampler``).
        corruptions, severities, label_noise, label_noise_mode: robustness conditions scored besides the
            clean one (``medfew.evaluation.robustness.Robustness``).
    """

    shares_prepare = True
    cuts_images = False
    setting_options = ("shots", *ROBUSTNESS_OPTIONS)

    def __init__(
        self,
        data: ImageData,
        class_split: Mapping[str, Sequence[str] | int] | None,
        shots: Sequence[int] = (1, 5),
        n_way: int | None = None,
        n_query: int = 15,
        n_episodes: int = 100,
        episode_seed: int = 0,
        name: str = "episodes",
        novel_unlabeled: float = 0.0,
        group_duplicates: bool = True,
        duplicate_threshold: int | None = 4,
        corruptions: Sequence[str] = (),
        severities: Sequence[int] = SEVERITY_LEVELS,
        label_noise: Sequence[float] = (0.0,),
        label_noise_mode: str = "symmetric",
    ) -> None:
        self.name = name
        self.robustness = Robustness.of(corruptions, severities, label_noise, label_noise_mode)
        if n_episodes < 1:
            raise ValueError(f"the episodes protocol needs n_episodes >= 1 (protocol.n_episodes / episodes), got {n_episodes}")
        if not 0 <= novel_unlabeled < 1:
            raise ValueError(f"protocol.novel_unlabeled is a share of each novel class's images in [0, 1), got {novel_unlabeled}")
        if not class_split:
            raise ValueError(
                f"the episodes protocol needs data.class_split (base / val / novel classes); {data.name} has none"
            )
        split = splits.class_split(data.class_names, **class_split, seed=episode_seed)
        self.parts = split.apply(data)
        for role, part in self.parts.items():
            if role != "base" and part.n_classes < 2:
                raise ValueError(
                    f"data.class_split gives {data.name} 1 {role} class ({part.class_names[0]}); {role} episodes need "
                    "2 classes or more, else every answer is right: add a class or move it to base"
                )
        self.novel, self.novel_pool = hold_out(
            self.parts["novel"], novel_unlabeled, episode_seed, duplicate_threshold, group_duplicates
        )
        groups = split_groups(self.novel, duplicate_threshold, group_duplicates)
        kept = "no query shares a group with its episode's support"
        self.description = "by class (data.class_split)" + (
            f"; {novel_unlabeled:g} of each novel class's images ({len(self.novel_pool)}) unlabeled in the pretraining pool, never in an episode"
            if self.novel_pool is not None else ""
        ) + f"; novel classes: {describe_groups(self.novel, groups, group_duplicates, kept)}"
        groups = torch.from_numpy(groups) if len(np.unique(groups)) < len(groups) else None
        n_way = n_way or self.novel.n_classes
        self.episode_sets = {
            k: EpisodeSet.draw(self.novel, n_way, k, n_query, n_episodes, seed=episode_seed, groups=groups) for k in shots
        }

    def settings(self) -> list[Setting]:
        return [Setting("shots", k) for k in self.episode_sets]

    def context(self, setting: Setting, seed: int, workdir: Path) -> PrepareContext:
        base, val = self.parts.get("base"), self.parts.get("val")
        pool = [part for part in (base, val, self.novel_pool) if part is not None]
        unlabeled = concat(pool).unlabeled() if pool else None
        return PrepareContext(
            workdir=workdir / f"seed{seed}", seed=seed, base=base, val=val, unlabeled=unlabeled, monitor=monitor_images(val)
        )

    def split_hash(self, setting: Setting, seed: int) -> str:
        return self.episode_sets[int(setting.value)].hash

    def classes(self) -> dict[str, list[str]]:
        return {role: list(part.class_names) for role, part in self.parts.items()}

    def n_tasks(self, setting: Setting) -> int:
        return len(self.episode_sets[int(setting.value)])

    def tasks(self, setting: Setting, seed: int, device: str | torch.device = "cpu") -> Iterator[Task]:
        for i, episode in enumerate(self.episode_sets[int(setting.value)]):
            yield Task(
                support=episode.support.to(device),
                support_labels=episode.support_labels.to(device),
                query=episode.query.to(device),
                query_labels=episode.query_labels.to(device),
                classes=tuple(self.novel.class_names[c] for c in episode.classes.tolist()),
                episode=i,
            )


def hold_out(
    novel: ImageData, share: float, seed: int, duplicate_threshold: int | None = 4, group_duplicates: bool = True
) -> tuple[ImageData, ImageData | None]:
    """(the novel images episodes draw from, the held-out ``share`` of each class without labels or None).

    The cut is a stratified split by group (``medfew.data.make_splits``): a patient's images, and
    near-duplicate images (with ``group_duplicates``), stay on one side. The episodes' data is
    renamed with the share, so their hash differs from the episodes of all images.
    """
    if not share:
        return novel, None
    shares = {"train": 1 - share, "val": 0.0, "test": share}
    grouping = {"duplicate_threshold": duplicate_threshold, "group_duplicates": group_duplicates}
    cut = splits.make_splits(novel, "stratified", shares, seed=seed, **grouping)[0].data.split
    rest = novel.subset(torch.from_numpy(np.flatnonzero(cut == "train")))
    held = novel.subset(torch.from_numpy(np.flatnonzero(cut == "test"))).unlabeled()
    return replace(rest, name=f"{novel.name} (novel_unlabeled {share:g})"), held


def monitor_images(data: ImageData | None) -> ImageData | None:
    """The labelled images of ``data`` for the SSL monitor, a seeded sample of ``MONITOR_IMAGES`` when more; None without labels."""
    if data is None or not data.class_counts().any():
        return None
    labelled = torch.nonzero(data.labels >= 0).flatten()
    if len(labelled) > MONITOR_IMAGES:
        labelled = labelled[torch.randperm(len(labelled), generator=torch.Generator().manual_seed(0))[:MONITOR_IMAGES]].sort().values
    return data.subset(labelled)


POOLS = ("train", "rest", "all")  # the label_budget protocol's unlabeled_pool values


class LabelBudgetProtocol(Protocol):
    """K labels per class or a fraction p of the official train split; test on the whole test split.

    Per seed a stratified subset of train keeps its labels (``base``); the val split (when
    the dataset has one) is for early stopping; ``unlabeled_pool`` = "train" gives every
    train image without labels to pretraining (the usual semi-/self-supervised protocol,
    and the only one that leaves a pool at 100 % of labels), "rest" only those not labelled,
    "all" every image of the data, val and test included (transductive: labels are never used,
    and with ``data.split=kfold`` every fold pretrains on the same pool, so the SSL cache shares
    one pretraining per seed across folds). The SSL monitor (``PrepareContext.monitor``) is the
    val split, except with "all", where it would differ by fold: the spread of pool images then.

    Args:
        data: a dataset with official "train" and "test" splits (and optionally "val").
        per_class: labels per class, one setting each; fractions: label fractions in (0, 1].
        corruptions, severities, label_noise, label_noise_mode: robustness conditions scored besides the
            clean one (``medfew.evaluation.robustness.Robustness``).
    """

    shares_prepare = False
    cuts_images = True
    setting_options = ("per_class", "fractions", *ROBUSTNESS_OPTIONS)

    def __init__(
        self,
        data: ImageData,
        per_class: Sequence[int] = (),
        fractions: Sequence[float] = (),
        unlabeled_pool: str = "train",
        name: str = "label_budget",
        corruptions: Sequence[str] = (),
        severities: Sequence[int] = SEVERITY_LEVELS,
        label_noise: Sequence[float] = (0.0,),
        label_noise_mode: str = "symmetric",
    ) -> None:
        self.name = name
        self.robustness = Robustness.of(corruptions, severities, label_noise, label_noise_mode)
        if not per_class and not fractions:
            raise ValueError("the label_budget protocol needs per_class and/or fractions, got neither")
        if unlabeled_pool not in POOLS:
            raise ValueError(f"protocol.unlabeled_pool must be one of {', '.join(POOLS)}, got '{unlabeled_pool}'")
        missing = [part for part in ("train", "test") if part not in data.split_names()]
        if missing:
            raise ValueError(
                f"the label_budget protocol needs train and test images; {data.name} has splits "
                f"{data.split_names() or 'none'}. Set data.split=stratified (seeded train / val / test by "
                "data.split_fractions) or data.split=kfold (k-fold cross-validation, data.folds)"
            )
        if data.n_classes < 2:
            names = ", ".join(data.class_names)
            raise ValueError(f"{data.name} has {data.n_classes} class ({names}); classifying needs 2 or more")
        self.data = data
        self.train = data.select_split("train")
        self.val = data.select_split("val") if "val" in data.split_names() else None
        self.test = data.select_split("test")
        self.budgets = [Setting("per_class", k) for k in per_class] + [Setting("fraction", p) for p in fractions]
        self.unlabeled_pool = unlabeled_pool
        self.check_budgets()

    def check_budgets(self) -> None:
        """Refuse, before any learner trains, a setting that a class of the train part cannot fill:
        ``per_class`` labels, or the one labelled image per class a fraction keeps at least."""
        in_train, in_all = self.train.class_counts().tolist(), self.data.class_counts().tolist()
        for name, count, total in zip(self.data.class_names, in_train, in_all):
            for setting in self.budgets:
                want = int(setting.value) if setting.kind == "per_class" else 1
                if want <= count:
                    continue
                if setting.kind == "per_class":
                    asked, fix = f"protocol.per_class = {want}", f"lower protocol.per_class or give '{name}' more train images"
                else:
                    asked, fix = f"protocol.fractions = {setting.value:g} labels at least 1", f"give '{name}' train images"
                raise ValueError(f"{self.data.name}: class '{name}' has {count} images in train ({total} in all parts); {asked}: {fix}")

    def settings(self) -> list[Setting]:
        return list(self.budgets)

    def labelled(self, setting: Setting, seed: int) -> tuple[Tensor, Tensor]:
        """Indices into the train split of the labelled images and of the rest."""
        if setting.kind == "per_class":
            budget = splits.label_budget(self.train, per_class=int(setting.value), seed=seed)
        else:
            budget = splits.label_budget(self.train, fraction=setting.value, seed=seed)
        return budget.labelled, budget.unlabeled

    def budget(self, setting: Setting) -> tuple[int, int]:
        """The count does not depend on the seed: per class, the setting's share (at least one) or count."""
        return len(self.labelled(setting, 0)[0]), len(self.train)

    def context(self, setting: Setting, seed: int, workdir: Path) -> PrepareContext:
        labelled, rest = self.labelled(setting, seed)
        pool = {"train": self.train, "all": self.data, "rest": self.train.subset(rest)}[self.unlabeled_pool]
        return PrepareContext(
            workdir=workdir / setting.name / f"seed{seed}",
            seed=seed,
            base=self.train.subset(labelled),
            val=self.val,
            unlabeled=pool.unlabeled() if len(pool) else None,
            monitor=None if self.transductive else monitor_images(self.val),
        )

    @property
    def transductive(self) -> bool:
        """True when pretraining sees the test images (without labels): ``unlabeled_pool`` = "all"."""
        return self.unlabeled_pool == "all"

    def split_hash(self, setting: Setting, seed: int) -> str:
        return content_hash(self.data.name, setting.name, self.labelled(setting, seed)[0], len(self.test))

    def classes(self) -> dict[str, list[str]]:
        return {"classes": list(self.data.class_names)}

    def n_tasks(self, setting: Setting) -> int:
        return 1

    def tasks(self, setting: Setting, seed: int, device: str | torch.device = "cpu") -> Iterator[Task]:
        base = self.train.subset(self.labelled(setting, seed)[0])

        def tensors(part: ImageData) -> tuple[Tensor, Tensor]:
            return to_float(part.images).to(device), part.labels.to(device)

        yield Task(
            *tensors(base),
            *tensors(self.test),
            classes=self.data.class_names,
            val=tensors(self.val) if self.val is not None else None,
        )

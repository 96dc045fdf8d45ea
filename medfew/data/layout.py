"""Which files an image or DICOM folder holds, their classes, official split and groups.

Labelled layouts:
- ``<folder>/<class>/...``: one subfolder per class (files searched recursively); no split.
- ``<folder>/train/<class>/...`` and ``<folder>/test/<class>/...``, optionally ``val/<class>/``:
  the official split. The class names are train's class folders (sorted); a class folder in
  val or test that train lacks is an error.
Unlabelled (``labelled=False``): every file under the folder, no split.

``<folder>/groups.csv`` (columns ``file,group``; ``file`` relative to ``folder``, e.g.
``train/glioma/a.png``, with / or \\) sets each listed image's group (a patient id, say) so that splits keep
a group's images in one part. Images it does not list get a group of their own; a row naming a
file that is not one of the images is an error.

Which files count is the loader's ``FileKind``. Hidden files and folders are skipped and linked
folders followed; every other file that is not of the kind (and not groups.csv) is named in a
warning, never dropped silently.
"""

from __future__ import annotations

import csv
import logging
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath

import numpy as np
import torch

from medfew.data.dataset import SPLIT_NAMES, UNLABELED, group_codes
from medfew.data.root import SET_ROOT, data_root

GROUPS_FILE = "groups.csv"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileKind:
    """The files a loader reads: ``name`` for messages, ``accepts`` tests one path."""

    name: str
    accepts: Callable[[Path], bool]


@dataclass(frozen=True)
class FileList:
    """The files of a folder in load order, with (N,) labels, class names and split (or None)."""

    files: list[Path]
    labels: torch.Tensor
    class_names: tuple[str, ...]
    split: np.ndarray | None


def resolve_folder(path: str | os.PathLike, root: str | os.PathLike | None = None) -> Path:
    """``path`` if absolute, else ``<data root>/path``; it must be an existing folder."""
    folder = Path(path) if Path(path).is_absolute() else data_root(root) / path
    if not folder.exists():
        raise FileNotFoundError(f"data folder {folder} not found: give data.source.path as an absolute path, or {SET_ROOT} to its parent")
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder} is a file; expected a folder")
    return folder


def visible_files(folder: Path, recursive: bool = True) -> list[Path]:
    """Files under ``folder`` with no hidden part in their path below it, sorted. Linked folders are
    followed (each real folder once, so a link loop ends); a link to nothing is an error naming it."""
    files, seen = [], set()
    for root, folders, names in os.walk(folder, followlinks=True):
        if os.path.realpath(root) in seen:
            folders[:] = []
            continue
        seen.add(os.path.realpath(root))
        folders[:] = [name for name in folders if recursive and not name.startswith(".")]
        files += [Path(root, name) for name in names if not name.startswith(".")]
    for path in files:
        if not path.exists():
            raise FileNotFoundError(f"{path} is a link to {os.readlink(path)}, which does not exist")
    return sorted(files)


def find_files(folder: Path, kind: FileKind, recursive: bool = True) -> list[Path]:
    """Non-hidden files under ``folder`` that ``kind`` accepts, sorted."""
    return [p for p in visible_files(folder, recursive) if kind.accepts(p)]


def warn_skipped(folder: Path, files: Sequence[Path], kind: FileKind, labelled: bool) -> None:
    """Log the visible files under ``folder`` that are neither in ``files`` nor groups.csv."""
    read = set(files) | {folder / GROUPS_FILE}
    skipped = [p for p in visible_files(folder) if p not in read]
    if skipped:
        suffixes = Counter(p.suffix.lower() or "no suffix" for p in skipped)
        log.warning(
            "%s: %d files not read (%s): %s. Read are %s%s",
            folder, len(skipped), ", ".join(f"{n} {s}" for s, n in suffixes.most_common()),
            ", ".join(p.relative_to(folder).as_posix() for p in skipped[:5]) + (" ..." if len(skipped) > 5 else ""),
            kind.name, ", inside the class folders of a labelled layout" if labelled else "",
        )


def subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def class_folders(folder: Path, kind: FileKind) -> dict[str, list[Path]]:
    """Class name -> its files (sorted, searched recursively), one entry per subfolder.

    Hidden entries are skipped. Raises when there are no class subfolders or one holds no
    file of ``kind``.
    """
    classes = {p.name: find_files(p, kind) for p in subfolders(folder)}
    if not classes:
        loose = len(find_files(folder, kind, recursive=False))
        raise ValueError(
            f"{folder} has no class subfolders (one folder per class expected; found {loose} files "
            f"directly in it). For images without labels pass labelled=false"
        )
    for name, files in classes.items():
        if not files:
            raise ValueError(f"class folder {folder / name} is empty: no {kind.name} in it")
    return classes


def list_files(folder: Path, kind: FileKind, labelled: bool) -> FileList:
    """The files of ``folder`` in one of the layouts of the module docstring; the others are logged."""
    listing = layout_files(folder, kind, labelled)
    warn_skipped(folder, listing.files, kind, labelled)
    return listing


def layout_files(folder: Path, kind: FileKind, labelled: bool) -> FileList:
    if not labelled:
        files = find_files(folder, kind)
        if not files:
            raise ValueError(f"{folder} holds no {kind.name}")
        return FileList(files, torch.full((len(files),), UNLABELED), (), None)
    names = [p.name for p in subfolders(folder)]
    if not set(names) & set(SPLIT_NAMES):
        classes = class_folders(folder, kind)
        files, labels, _ = gather({"": classes}, tuple(classes))
        return FileList(files, labels, tuple(classes), None)
    if set(names) - set(SPLIT_NAMES) or not {"train", "test"} <= set(names):
        raise ValueError(
            f"{folder} has folders {', '.join(names)}: a split layout holds only train/, test/ and optionally val/ "
            "(each with one subfolder per class), and no class folder may be named train, val or test"
        )
    per_split = {s: class_folders(folder / s, kind) for s in SPLIT_NAMES if s in names}
    class_names = tuple(per_split["train"])
    for split, classes in per_split.items():
        extra = [c for c in classes if c not in class_names]
        if extra:
            raise ValueError(
                f"{folder / split} has class folders {extra} that {folder / 'train'} lacks; "
                f"the classes are train's: {', '.join(class_names)}"
            )
    files, labels, split = gather(per_split, class_names)
    return FileList(files, labels, class_names, np.array(split))


def gather(
    per_split: dict[str, dict[str, list[Path]]], class_names: tuple[str, ...]
) -> tuple[list[Path], torch.Tensor, list[str]]:
    """Files, (N,) labels and the split of each file from {split: {class: files}}."""
    files, labels, split = [], [], []
    for name, classes in per_split.items():
        for class_name, members in classes.items():
            files += members
            labels += [class_names.index(class_name)] * len(members)
            split += [name] * len(members)
    return files, torch.tensor(labels, dtype=torch.long), split


def read_groups(folder: Path, files: Sequence[Path]) -> torch.Tensor | None:
    """Integer group per file from ``<folder>/groups.csv`` (None without one); unlisted files get their own."""
    path = folder / GROUPS_FILE
    if not path.is_file():
        return None
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if not {"file", "group"} <= set(reader.fieldnames or ()):
            raise ValueError(f"{path}: columns are {reader.fieldnames or 'none'}; expected a header row file,group")
        listed: dict[str, str] = {}
        for line, row in enumerate(reader, start=2):
            file = PureWindowsPath((row["file"] or "").strip()).as_posix()  # "a\\b.png" or "a/b.png"
            group = (row["group"] or "").strip()
            if file == "." or not group:
                raise ValueError(f"{path} line {line}: empty file or group ({row})")
            if listed.get(file, group) != group:
                raise ValueError(f"{path} line {line}: {file} is listed in groups '{listed[file]}' and '{group}'")
            listed[file] = group
    relative = [f.relative_to(folder).as_posix() for f in files]
    unknown = sorted(set(listed) - set(relative))
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise ValueError(f"{path} names {len(unknown)} files that are not images read from {folder}: {shown}")
    return group_codes([listed.get(r) for r in relative])

"""results.csv: one self-describing row per learner x setting x seed x episode, appended as
tasks are scored, so an interrupted comparison resumes with the tasks not yet in it.

Every row names the data it was scored on: ``fold`` (the train / val / test cut: "official",
"stratified" or "repeat<r>-fold<k>") and ``data_hash``, the fingerprint of that fold's images,
labels and split after preprocessing, and ``threads``, the torch threads that computed it (their
number changes the last digits). A file written before ``threads`` existed is read with it
empty and gains the column at its next write. ``corruption``, ``severity`` and ``label_noise`` name
the robustness condition (``medfew.evaluation.robustness``); a file without them holds clean rows
("none", 0, 0.0) and gains them likewise. A file that cannot be written is told before scoring
(``check_writable``), and rows whose write fails are kept in a file beside it (``save_aside``).
"""

from __future__ import annotations

import csv
import os
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from medfew.evaluation.metrics import METRICS
from medfew.files import write_csv

COLUMNS = (
    "dataset", "protocol", "fold", "data_hash", "threads", "learner", "learner_hash", "setting", "kind", "value", "seed",
    "split_hash", "corruption", "severity", "label_noise", "episode", "n_way", "n_present", "n_support", "n_query", *METRICS,
    "seconds", "per_class_acc", "confusion",
)  # fmt: skip
#: columns added since the first version: a file without them is read with these values, and rewritten with them
ADDED = {"threads": "", "corruption": "none", "severity": "0", "label_noise": "0.0"}
KEY = ("fold", "data_hash", "learner", "learner_hash", "setting", "seed", "split_hash", "corruption", "severity", "label_noise")


def row_key(row: Mapping[str, Any]) -> tuple[str, ...]:
    """Identity of the block a row belongs to (one fold's data, learner config, setting, seed, split and robustness condition)."""
    return tuple(str(row[k]) for k in KEY)


class ResultsFile:
    """Append-only CSV with the fixed ``COLUMNS``; every write replaces the file atomically."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def read(self) -> list[dict[str, str]]:
        if not self.path.exists():
            return []
        with self.path.open(newline="") as f:
            reader = csv.DictReader(f)
            found = tuple(reader.fieldnames or ())
            if found != tuple(c for c in COLUMNS if c in found) or not set(COLUMNS) - set(found) <= set(ADDED):
                raise ValueError(
                    f"{self.path} has columns {reader.fieldnames}; expected {list(COLUMNS)} "
                    "(written by another medfew version?). Move it away to start afresh"
                )
            return [ADDED | row for row in reader]

    def scored(self) -> dict[tuple[str, ...], set[str]]:
        """The episodes already scored, by block (``row_key``)."""
        episodes = defaultdict(set)
        for row in self.read():
            episodes[row_key(row)].add(row["episode"])
        return dict(episodes)

    def append(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Add rows: the whole file is written to a temporary and renamed (one retry, then an
        OSError naming the file), so a kill or a full disk leaves the old file, never half a row."""
        old = self.read()
        rows = list(rows)
        write_csv(self.path, [*old, *rows], list(COLUMNS))

    def check_writable(self) -> None:
        """Raise a PermissionError naming the file when it, or its folder, cannot be written (checked
        before anything is scored, so no work is done that could not be saved)."""
        for path in (self.path, self.path.parent):
            if path.exists() and not os.access(path, os.W_OK):
                kind = "file" if path == self.path else "folder"
                raise PermissionError(
                    f"cannot write {self.path}: the {kind} {path} is read-only (mode {path.stat().st_mode & 0o777:o}); "
                    "make it writable or use another run folder (hydra.run.dir=...)"
                )

    def save_aside(self, rows: list[Mapping[str, Any]]) -> Path:
        """Write ``rows`` that could not be appended to ``<name>.unsaved-<pid>.csv`` beside this file, or in
        the temporary folder when that fails too; return where they are."""
        name = f"{self.path.stem}.unsaved-{os.getpid()}{self.path.suffix}"
        for folder in (self.path.parent, Path(tempfile.gettempdir())):
            try:
                return write_csv(folder / name, rows, list(COLUMNS), retries=0)
            except OSError:
                continue
        raise OSError(f"cannot write the unsaved rows to {self.path.parent / name} nor to {Path(tempfile.gettempdir()) / name}")

"""results.csv: one self-describing row per learner x setting x seed x episode, appended as
tasks are scored, so an interrupted comparison resumes with the tasks not yet in it.

Every row names the data it was scored on: ``fold`` (the train / val / test cut: "official",
"stratified" or "repeat<r>-fold<k>") and ``data_hash``, the fingerprint of that fold's images,
labels and split after preprocessing.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from medfew.evaluation.metrics import METRICS
from medfew.files import write_atomic

COLUMNS = (
    "dataset", "protocol", "fold", "data_hash", "learner", "learner_hash", "setting", "kind", "value", "seed",
    "split_hash", "episode", "n_way", "n_present", "n_support", "n_query", *METRICS, "seconds", "per_class_acc", "confusion",
)  # fmt: skip
KEY = ("fold", "data_hash", "learner", "learner_hash", "setting", "seed", "split_hash")


def row_key(row: Mapping[str, Any]) -> tuple[str, ...]:
    """Identity of the block a row belongs to (one fold's data, learner config, setting, seed and split)."""
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
            if tuple(reader.fieldnames or ()) != COLUMNS:
                raise ValueError(
                    f"{self.path} has columns {reader.fieldnames}; expected {list(COLUMNS)} "
                    "(written by another medfew version?). Move it away to start afresh"
                )
            return list(reader)

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

        def write(temporary: Path) -> None:
            with temporary.open("w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=COLUMNS)
                writer.writeheader()
                writer.writerows(old)
                writer.writerows(rows)

        rows = list(rows)
        write_atomic(self.path, write)

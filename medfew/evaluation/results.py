"""results.csv: one self-describing row per learner x setting x seed x episode, appended as
tasks are scored, so an interrupted comparison resumes with the tasks not yet in it."""

from __future__ import annotations

import csv
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from medfew.evaluation.metrics import METRICS

COLUMNS = (
    "dataset", "protocol", "learner", "learner_hash", "setting", "kind", "value", "seed", "split_hash",
    "episode", "n_way", "n_support", "n_query", *METRICS, "seconds", "per_class_acc", "confusion",
)  # fmt: skip
KEY = ("learner", "learner_hash", "setting", "seed", "split_hash")


def row_key(row: Mapping[str, Any]) -> tuple[str, ...]:
    """Identity of the block a row belongs to (one learner config, setting, seed and split)."""
    return tuple(str(row[k]) for k in KEY)


class ResultsFile:
    """Append-only CSV with the fixed ``COLUMNS``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def read(self) -> list[dict[str, str]]:
        if not self.path.exists():
            return []
        with self.path.open(newline="") as f:
            reader = csv.DictReader(f)
            if tuple(reader.fieldnames or ()) != COLUMNS:
                raise ValueError(f"{self.path} has columns {reader.fieldnames}; expected {list(COLUMNS)}. Move it away to start afresh")
            return list(reader)

    def scored(self) -> dict[tuple[str, ...], set[str]]:
        """The episodes already scored, by block (``row_key``)."""
        episodes = defaultdict(set)
        for row in self.read():
            episodes[row_key(row)].add(row["episode"])
        return dict(episodes)

    def append(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Add rows atomically: the file is rewritten to a temporary and renamed,
        so a kill leaves either the old or the new file, never a half-written row."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".csv.tmp")
        with temporary.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(self.read())
            writer.writerows(rows)
        os.replace(temporary, self.path)

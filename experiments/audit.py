"""Leakage audit: count exact and near-duplicate images across the splits of a data config.

    python experiments/audit.py data=brain_mri threshold=4

Prints the counts and writes one CSV row per cross-split pair (indices, splits, labels,
file names when known, pHash distance) to ``csv`` (default: the run folder).
"""

import csv
import json
from pathlib import Path

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig

from medfew.data import ImageData, audit_duplicates


def audit(cfg: DictConfig) -> dict[str, int]:
    """Run the audit for ``cfg.data`` and write ``cfg.csv``; return the counts."""
    data = instantiate(cfg.data.source)
    report = audit_duplicates(data, cfg.threshold)
    rows = report.rows()
    for row in rows:
        row["first_label"], row["second_label"] = (label_name(data, row[k]) for k in ("first", "second"))
    counts = report.counts() | {
        "label_conflicts": sum(r["first_label"] != r["second_label"] for r in rows),
        "images": len(data),
    }
    path = Path(cfg.csv)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        columns = list(rows[0]) if rows else ["kind", "distance", "first", "second"]
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    print(f"{data.name}: threshold {cfg.threshold}; {json.dumps(counts, indent=1)}\npairs written to {path}")
    return counts


def label_name(data: ImageData, index: int) -> str:
    label = int(data.labels[index])
    return data.class_names[label] if label >= 0 else "unlabeled"


@hydra.main(version_base="1.3", config_path="../configs", config_name="audit")
def main(cfg: DictConfig) -> None:
    audit(cfg)


if __name__ == "__main__":
    main()

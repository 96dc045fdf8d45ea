"""Screen a comparison's data for val / test images that duplicate train images, before any learner runs.

Uses the leakage audit of ``medfew.data.audit`` (pixel-identical copies, and perceptual-hash
near duplicates within ``threshold`` bits). ``warn`` logs and records them, ``exclude``
also drops them from val / test; either way ``leakage.json`` in the run folder says what
was found and done.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from medfew.data.audit import audit_duplicates
from medfew.data.dataset import ImageData

log = logging.getLogger(__name__)
CHECKS = ("warn", "exclude", "off")
REPORT = "leakage.json"


def screen_leakage(data: ImageData, check: str, threshold: int | None, out: Path) -> ImageData:
    """``data``, minus val / test images duplicating a train image when ``check`` is "exclude".

    Args:
        data: the comparison's dataset; screened only when it has a "train" split and another.
        check: "warn", "exclude" or "off".
        threshold: pHash Hamming distance (bits) of a near duplicate; None: exact copies only.
        out: run folder receiving ``leakage.json``.
    """
    if check not in CHECKS:
        raise ValueError(f"leakage.check '{check}' is not one of {', '.join(CHECKS)}")
    if check == "off":
        return data
    record: dict = {"check": check, "threshold": threshold, "dataset": data.name}
    if "train" not in data.split_names() or len(data.split_names()) < 2:
        record["skipped"] = f"{data.name} has splits {data.split_names() or 'none'}; nothing to screen against train"
        log.info("leakage check skipped: %s", record["skipped"])
        write_record(record, out)
        return data
    report = audit_duplicates(data, threshold)
    from_train = torch.from_numpy(report.splits[:, 0] == "train")
    flagged = report.second[from_train].unique()  # train comes first in every pair it is part of
    record |= {"counts": report.counts(), "flagged": len(flagged), "excluded": check == "exclude"}
    record["images"] = [
        {"index": int(i), "split": str(data.split[i])} | ({"file": str(data.filenames[i])} if data.filenames is not None else {})
        for i in flagged.tolist()
    ]
    if len(flagged):
        log.warning(
            "%s: %d val/test images duplicate train images (exact or pHash within %s bits); %s. Details: %s",
            data.name, len(flagged), threshold,
            "excluded from evaluation" if check == "exclude" else "scores may be optimistic; leakage.check=exclude drops them",
            out / REPORT,
        )  # fmt: skip
    write_record(record, out)
    if check == "exclude" and len(flagged):
        keep = torch.ones(len(data), dtype=torch.bool)
        keep[flagged] = False
        return data.subset(torch.nonzero(keep).flatten())
    return data


def write_record(record: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / REPORT).write_text(json.dumps(record, indent=1))

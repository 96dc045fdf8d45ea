"""Screen a comparison's data for val / test images that duplicate train images, or share a group
(a patient) with them, before any learner runs.

Uses the leakage audit of ``medfew.data.audit`` (pixel-identical copies, and perceptual-hash
near duplicates within ``threshold`` bits) and the data's groups (a split medfew cuts keeps each
group in one part; the data's own split may not). ``warn`` logs and records them, ``exclude``
also drops them from val / test; either way the returned record (the comparison writes it to
``leakage.json``) says what was found and done. ``warn_label_conflicts`` names pixel-identical
images with different labels, whatever the split.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from medfew.data.audit import audit_duplicates, label_conflicts
from medfew.data.dataset import ImageData

log = logging.getLogger(__name__)
CHECKS = ("warn", "exclude", "off")


def screen_leakage(data: ImageData, check: str, threshold: int | None) -> tuple[ImageData, dict[str, Any]]:
    """``data`` (minus val / test images duplicating a train image when ``check`` is "exclude")
    and the record of what was found and done.

    Args:
        data: the comparison's dataset; screened only when it has a "train" split and another.
        check: "warn", "exclude" or "off".
        threshold: pHash Hamming distance (bits) of a near duplicate; None: exact copies only.
    """
    if check not in CHECKS:
        raise ValueError(f"leakage.check '{check}' is not one of {', '.join(CHECKS)}")
    record: dict = {"check": check, "threshold": threshold, "dataset": data.name}
    if check == "off":
        return data, record
    if "train" not in data.split_names() or len(data.split_names()) < 2:
        record["skipped"] = f"{data.name} has splits {data.split_names() or 'none'}; nothing to screen against train"
        log.info("leakage check skipped: %s", record["skipped"])
        return data, record
    report = audit_duplicates(data, threshold)
    from_train = torch.from_numpy(report.splits[:, 0] == "train")
    copies = report.second[from_train].unique()  # train comes first in every pair it is part of
    patients = shared_groups(data)
    flagged = torch.cat([copies, patients]).unique()
    record |= {
        "counts": report.counts(), "duplicates": len(copies), "shared_groups": len(patients),
        "flagged": len(flagged), "excluded": check == "exclude",
    }  # fmt: skip
    record["images"] = [
        {"index": int(i), "split": str(data.split[i])} | ({"file": str(data.filenames[i])} if data.filenames is not None else {})
        for i in flagged.tolist()
    ]
    if len(flagged):
        found = leaks(len(copies), len(patients), threshold)
        log.warning("%s: %s%s, %s. Details: leakage.json", data.name, found, example(data, patients), outcome(check == "exclude"))
    if check == "exclude" and len(flagged):
        return exclude(data, flagged), record
    return data, record


def shared_groups(data: ImageData) -> torch.Tensor:
    """Indices of the val / test images whose group (a patient) also has train images: a leak that
    the data's own split carries, since a split medfew cuts keeps each group in one part."""
    if data.groups is None:
        return torch.empty(0, dtype=torch.long)
    train = torch.from_numpy(data.split == "train")
    return torch.nonzero(~train & torch.isin(data.groups, data.groups[train])).flatten()


def example(data: ImageData, patients: torch.Tensor) -> str:
    """' (test/b.png shares its group with train/a.png)' for the first of ``patients``, or ''."""
    if not len(patients):
        return ""
    first = int(patients[0])
    partner = int(torch.nonzero(torch.from_numpy(data.split == "train") & (data.groups == data.groups[first]))[0])
    return f" ({describe(data, first)} shares its group with {describe(data, partner)})"


def exclude(data: ImageData, flagged: torch.Tensor) -> ImageData:
    """``data`` without the ``flagged`` images; an error when that empties a split."""
    keep = torch.ones(len(data), dtype=torch.bool)
    keep[flagged] = False
    for split in data.split_names():
        if split != "train" and not (keep & torch.from_numpy(data.split == split)).any():
            raise ValueError(
                f"leakage.check=exclude removed every {split} image of {data.name}: each duplicates a train image or shares its group "
                f"(see leakage.json); nothing is left to score on. Use leakage.check=warn, or split the data by "
                "groups of duplicates (data.split=stratified or kfold groups them)"
            )
    return data.subset(torch.nonzero(keep).flatten())


def warn_label_conflicts(data: ImageData) -> str:
    """Log and return the sets of pixel-identical images with different labels (a copy in two class
    folders, say; '' when none): no learner can be right on all of them, whatever the split."""
    conflicts = label_conflicts(data)
    if not conflicts:
        return ""
    shown = "; ".join(" = ".join(describe(data, i) for i in members) for members in conflicts[:5])
    sets = f"{len(conflicts)} set" + ("s" if len(conflicts) > 1 else "")
    found = f"{sets} of pixel-identical images with different labels: {shown}{' ...' if len(conflicts) > 5 else ''}"
    log.warning("%s: %s. Each copy is scored against its own label; correct the labels or remove the wrong copy", data.name, found)
    return found


def leakage_note(records: dict[str, dict[str, Any]]) -> str:
    """What summary.md says of the val / test images that duplicate train images or share a group with
    them, over the folds' leakage records ('' when none were found)."""
    if not any(record.get("flagged") for record in records.values()):
        return ""
    first = next(record for record in records.values() if record.get("flagged"))
    copies, patients = (sum(record.get(key, 0) for record in records.values()) for key in ("duplicates", "shared_groups"))
    found = leaks(copies, patients, first["threshold"], over_folds=len(records) > 1)
    return f"{found}, {outcome(first['excluded'])}; see leakage.json"


def leaks(copies: int, patients: int, threshold: int | None, over_folds: bool = False) -> str:
    """'3 val/test images duplicate train images (exact or pHash within 4 bits)', and / or '2 share a group
    (patient) with train images', as the log and summary.md say it."""
    where = " over the folds" if over_folds else ""
    found = [f"{copies} val/test images{where} duplicate train images (exact or pHash within {threshold} bits)"] if copies else []
    if patients:
        found.append(f"{patients} val/test images{where} share a group (patient) with train images")
    return "; ".join(found)


def outcome(excluded: bool) -> str:
    """What was done with the duplicates, as the log and summary.md say it."""
    return "excluded from evaluation" if excluded else "kept: scores may be optimistic (leakage.check=exclude drops them)"


def describe(data: ImageData, index: int) -> str:
    """'malignant/a.png (malignant)', or 'train image 12 (benign)' without file names."""
    if data.filenames is not None:
        where = str(data.filenames[index])
    else:
        where = f"image {index}" if data.split is None else f"{data.split[index]} image {index}"
    return f"{where} ({data.class_names[int(data.labels[index])]})"

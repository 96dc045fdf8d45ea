"""A model bundle applied to new scans: predictions.csv, one row per input file (or npz image), none dropped.

Columns: ``file`` (relative to the input folder), ``predicted`` (the class of highest probability,
empty when the file was not read), ``p_<class>`` (one probability per class, in the bundle's class
order) and ``note`` (what reading or converting the file did, or why it was not read). Images go
to the learner ``batch_size`` at a time; the MAML family normalises each batch with its own
statistics (``medfew.fewshot.gbml``), so their probabilities depend on the batch as in evaluation.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from medfew.data.episodes import to_float
from medfew.deploy.bundle import Bundle
from medfew.deploy.explain import explain_scans
from medfew.deploy.inputs import Scan, read_scans
from medfew.files import write_csv, write_json

PREDICTIONS = "predictions.csv"


def probability_columns(class_names: Sequence[str]) -> list[str]:
    return [f"p_{name}" for name in class_names]


def predict_scans(bundle: Bundle, scans: Sequence[Scan], batch_size: int = 256) -> torch.Tensor:
    """(n_read, n_classes) probabilities of the scans that have an image, in their order."""
    images = [scan.image for scan in scans if scan.image is not None]
    if not images:
        return torch.empty(0, len(bundle.class_names))
    device = next(bundle.learner.parameters(), torch.empty(0)).device
    stacked = torch.stack(images)
    return torch.cat([bundle.predict(to_float(chunk).to(device)).cpu() for chunk in stacked.split(batch_size)])


def prediction_rows(bundle: Bundle, scans: Sequence[Scan], probabilities: torch.Tensor) -> list[dict[str, Any]]:
    """One row per scan: its file, predicted class and probabilities (empty when unread), and its note."""
    rows, read = [], iter(probabilities.tolist())
    columns = probability_columns(bundle.class_names)
    for scan in scans:
        if scan.image is None:
            rows.append({"file": scan.file, "predicted": "", **dict.fromkeys(columns, ""), "note": scan.note})
            continue
        probs = next(read)
        best = max(range(len(probs)), key=probs.__getitem__)
        rows.append({"file": scan.file, "predicted": bundle.class_names[best], **{c: f"{p:.6f}" for c, p in zip(columns, probs)}, "note": scan.note})
    return rows


def write_predictions(path: Path, rows: list[dict[str, Any]], class_names: Sequence[str]) -> Path:
    return write_csv(path, rows, ["file", "predicted", *probability_columns(class_names), "note"])


def predict_input(
    bundle: Bundle, source: str | os.PathLike, out: str | os.PathLike, batch_size: int = 256, explain: bool = False, model: str = ""
) -> dict[str, Any]:
    """Predict every scan under ``source`` into ``<out>/predictions.csv`` (and Grad-CAM overlays with ``explain``);
    returns what ``<out>/prediction.json`` records: counts, timings and the explanation's outcome."""
    out = Path(out)
    start = time.perf_counter()
    scans = list(read_scans(source, bundle.preprocessing))
    read_s = time.perf_counter() - start
    probabilities = predict_scans(bundle, scans, batch_size)
    rows = prediction_rows(bundle, scans, probabilities)
    write_predictions(out / PREDICTIONS, rows, bundle.class_names)
    record = {
        "model": model,
        "learner": bundle.info["learner"],
        "input": str(source),
        "files": len(scans),
        "predicted": dict(Counter(row["predicted"] for row in rows if row["predicted"])),
        "not_read": [{"file": row["file"], "note": row["note"]} for row in rows if not row["predicted"]],
        "converted": sum(bool(row["note"]) for row in rows if row["predicted"]),
        "seconds": {"read": round(read_s, 3), "read_and_predict": round(time.perf_counter() - start, 3)},
    }
    if explain:
        record["explanations"] = explain_scans(bundle, scans, probabilities, out / "explain")
    write_json(out / "prediction.json", record)
    return record

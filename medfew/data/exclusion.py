"""Leave listed images out of a run: ``data.exclude=<csv with a file column>``, such as the
label_issues.csv or a reviewed copy of it that ``medfew audit label_issues=true`` writes.

Images are named as the loader names them: their path inside the data folder (``benign/0012.png``),
or ``#<index>`` (their position in the source) for a source without file names, such as a
MedMNIST npz. A listed name that is no image of the data is an error naming it: a list made for
other data, or another folder layout, must not silently leave the wrong images in.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch

from medfew.data.dataset import ImageData

COLUMN = "file"


def image_names(data: ImageData) -> list[str]:
    """Each image's file as its source names it, or '#<index>' when the source names none."""
    if data.filenames is not None:
        return [str(name) for name in data.filenames]
    return [f"#{i}" for i in range(len(data))]


def listed_files(path: str | Path) -> list[str]:
    """The distinct names of the ``file`` column of a csv, in file order."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data.exclude: no file {path}")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if COLUMN not in (reader.fieldnames or []):
            raise ValueError(f"data.exclude: {path} has no '{COLUMN}' column (its columns: {reader.fieldnames or 'none'})")
        return list(dict.fromkeys(row[COLUMN] for row in reader if row[COLUMN]))


def exclude_listed(data: ImageData, path: str | Path) -> ImageData:
    """``data`` without the images the csv at ``path`` lists; every listed name must be an image of ``data``."""
    listed = listed_files(path)
    names = image_names(data)
    unknown = sorted(set(listed) - set(names))
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise ValueError(
            f"data.exclude: {len(unknown)} of the {len(listed)} files listed in {path} are not images of {data.name}: {shown}. "
            f"Names are paths inside the data folder as the loader reports them (e.g. '{names[0]}'); remove those rows or fix the list"
        )
    keep = ~np.isin(np.array(names), listed)
    return data.subset(torch.from_numpy(np.flatnonzero(keep)))


def exclusion_note(path: str | Path | None) -> str:
    """'12 images listed in <path> left out' for the summary; '' without a list."""
    if not path:
        return ""
    return f"{len(listed_files(path))} images listed in {path} left out (data.exclude)"

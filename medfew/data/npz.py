"""Labelled npz files: ``images``, ``labels``, ``class_names`` and an optional ``split``."""

from pathlib import Path

import numpy as np
import torch

from medfew.data.dataset import ImageData
from medfew.data.medmnist import images_to_tensor
from medfew.data.root import data_root


def load_labelled_npz(file: str, root: str | None = None) -> ImageData:
    """Load ``<root>/<file>`` (or an absolute ``file``) in the labelled-npz format."""
    path = Path(file) if Path(file).is_absolute() else data_root(root) / file
    if not path.exists():
        raise FileNotFoundError(f"labelled npz {path} not found (set MEDFEW_DATA / data.root to its folder)")
    with np.load(path, allow_pickle=False) as npz:
        missing = [k for k in ("images", "labels", "class_names") if k not in npz.files]
        if missing:
            raise KeyError(f"{path}: missing keys {missing}; a labelled npz has images, labels, class_names")
        images = images_to_tensor(npz["images"], path)
        labels = torch.from_numpy(npz["labels"].astype(np.int64).reshape(-1))
        class_names = tuple(str(c) for c in npz["class_names"])
        split = npz["split"].astype(str) if "split" in npz.files else None
        source = str(npz["source"]) if "source" in npz.files else ""
        filenames = npz["filenames"].astype(str) if "filenames" in npz.files else None
    return ImageData(images, labels, class_names, split=split, name=path.name, source=source, filenames=filenames)

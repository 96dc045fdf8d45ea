"""Labelled npz files: ``images``, ``labels``, ``class_names`` and optional ``split``, ``groups``,
``filenames`` and ``source``."""

from pathlib import Path

import numpy as np
import torch

from medfew.data.dataset import ImageData
from medfew.data.npzfile import images_to_tensor, labels_to_tensor, open_npz, read_array
from medfew.data.root import SET_ROOT, data_root

REQUIRED = ("images", "labels", "class_names")
OPTIONAL = ("split", "groups", "filenames", "source")


def load_labelled_npz(file: str, root: str | None = None) -> ImageData:
    """Load ``<root>/<file>`` (or an absolute ``file``) in the labelled-npz format.

    An optional ``groups`` array (any dtype: patient ids, numbers) becomes integer codes in
    ``ImageData.groups``, so splits keep a group's images together.
    """
    path = Path(file) if Path(file).is_absolute() else data_root(root) / file
    if not path.exists():
        raise FileNotFoundError(f"labelled npz {path} not found: {SET_ROOT} to its folder")
    with open_npz(path) as npz:
        missing = [k for k in REQUIRED if k not in npz.files]
        if missing:
            raise KeyError(f"{path}: missing keys {missing}; a labelled npz has images, labels, class_names")
        arrays = {key: read_array(npz, key, path) for key in REQUIRED + OPTIONAL if key in npz.files}
    for key in ("class_names", "split", "groups", "filenames"):
        if key in arrays and arrays[key].ndim != 1:
            raise ValueError(f"{path}: {key} has shape {arrays[key].shape}; expected a 1-D array")
    return ImageData(
        images=images_to_tensor(arrays["images"], path),
        labels=labels_to_tensor(arrays["labels"], path),
        class_names=tuple(arrays["class_names"].astype(str).tolist()),
        split=arrays["split"].astype(str) if "split" in arrays else None,
        groups=groups_to_tensor(arrays["groups"], path) if "groups" in arrays else None,
        name=path.name,
        source=str(arrays["source"]) if "source" in arrays else "",
        filenames=arrays["filenames"].astype(str) if "filenames" in arrays else None,
    )


def groups_to_tensor(groups: np.ndarray, path: Path) -> torch.Tensor:
    """Group ids of any dtype -> integer codes in sorted id order; NaN is refused (not an id)."""
    if groups.dtype.kind == "f" and np.isnan(groups).any():
        first = int(np.flatnonzero(np.isnan(groups))[0])
        raise ValueError(
            f"{path}: groups has {np.isnan(groups).sum()} NaN values (first at index {first}); "
            "give every image a group id"
        )
    return torch.from_numpy(np.unique(groups, return_inverse=True)[1].reshape(-1).astype(np.int64))

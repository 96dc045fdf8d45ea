"""MedMNIST v2 2D datasets (Yang et al., Scientific Data 2023) from ``<root>/<flag>[_<size>].npz``."""

from pathlib import Path

import numpy as np
import torch

from medfew.data.dataset import ImageData
from medfew.data.root import data_root

SPLITS = ("train", "val", "test")


def medmnist_info(flag: str) -> dict:
    """MedMNIST's own metadata for ``flag`` (classes, task, download url)."""
    import medmnist

    if flag not in medmnist.INFO:
        flags_2d = sorted(f for f in medmnist.INFO if not f.endswith("3d"))
        raise KeyError(f"unknown MedMNIST flag '{flag}'; 2D flags are: {', '.join(flags_2d)}")
    info = medmnist.INFO[flag]
    if info["task"] == "multi-label, binary-class" or flag.endswith("3d"):
        raise ValueError(f"MedMNIST '{flag}' is {info['task']} / 3D; medfew reads single-label 2D flags")
    return info


def medmnist_path(flag: str, root: str | None = None, size: int | None = None) -> Path:
    suffix = "" if size in (None, 28) else f"_{size}"
    return data_root(root) / f"{flag}{suffix}.npz"


def download_medmnist(flag: str, root: str | None = None, size: int | None = None) -> Path:
    """Fetch the npz with the medmnist package (needs network)."""
    import medmnist

    path = medmnist_path(flag, root, size)
    path.parent.mkdir(parents=True, exist_ok=True)
    dataset_class = getattr(medmnist, medmnist_info(flag)["python_class"])
    dataset_class(split="train", root=str(path.parent), download=True, size=size or 28)
    return path


def load_medmnist(flag: str, root: str | None = None, size: int | None = None, download: bool = False) -> ImageData:
    """Load all three official splits of a 2D MedMNIST dataset.

    The file is read from the data root; it is downloaded only when missing and
    ``download`` is true.
    """
    info = medmnist_info(flag)
    path = medmnist_path(flag, root, size)
    if not path.exists():
        if not download:
            raise FileNotFoundError(
                f"MedMNIST file {path} not found: place {path.name} in {path.parent} "
                f"(or set MEDFEW_DATA / data.root), or pass download=true to fetch it"
            )
        download_medmnist(flag, root, size)
    with np.load(path) as npz:
        missing = [f"{s}_{k}" for s in SPLITS for k in ("images", "labels") if f"{s}_{k}" not in npz.files]
        if missing:
            raise KeyError(f"{path}: missing keys {missing}; is it a MedMNIST npz?")
        images = np.concatenate([npz[f"{s}_images"] for s in SPLITS])
        labels = np.concatenate([npz[f"{s}_labels"].reshape(-1) for s in SPLITS])
        split = np.concatenate([np.full(len(npz[f"{s}_labels"]), s) for s in SPLITS])
    class_names = tuple(info["label"][str(i)] for i in range(len(info["label"])))
    return ImageData(
        images=images_to_tensor(images, path),
        labels=torch.from_numpy(labels.astype(np.int64)),
        class_names=class_names,
        split=split,
        name=flag,
        source=f"MedMNIST v2 {flag} ({info.get('license', 'CC BY 4.0')})",
    )


def images_to_tensor(images: np.ndarray, path: Path | str) -> torch.Tensor:
    """N x H x W or N x H x W x C uint8 array -> N x C x H x W uint8 tensor."""
    if images.dtype != np.uint8:
        raise TypeError(f"{path}: images are {images.dtype}; expected uint8")
    if images.ndim == 3:
        images = images[:, None]
    elif images.ndim == 4 and images.shape[-1] in (1, 3):
        images = images.transpose(0, 3, 1, 2)
    else:
        raise ValueError(f"{path}: image array has shape {images.shape}; expected N x H x W or N x H x W x 1|3")
    return torch.from_numpy(np.ascontiguousarray(images))

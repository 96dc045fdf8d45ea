"""MedMNIST v2 2D datasets (Yang et al., Scientific Data 2023) from ``<root>/<flag>[_<size>].npz``."""

from pathlib import Path

import numpy as np
import torch

from medfew.data.dataset import ImageData
from medfew.data.npzfile import images_to_tensor, labels_to_tensor, open_npz, read_array
from medfew.data.root import SET_ROOT, data_root

SPLITS = ("train", "val", "test")
KEYS = tuple(f"{s}_{kind}" for s in SPLITS for kind in ("images", "labels"))


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
                f"(or {SET_ROOT} to the folder holding it), or set data.source.download=true to fetch it"
            )
        download_medmnist(flag, root, size)
    with open_npz(path) as npz:
        missing = [key for key in KEYS if key not in npz.files]
        if missing:
            raise KeyError(f"{path}: missing keys {missing}; is it a MedMNIST npz?")
        arrays = {key: read_array(npz, key, path) for key in KEYS}
    images = {s: images_to_tensor(arrays[f"{s}_images"], path, f"{s}_images") for s in SPLITS}
    labels = {s: labels_to_tensor(arrays[f"{s}_labels"], path, f"{s}_labels") for s in SPLITS}
    check_split_arrays(images, labels, path)
    class_names = tuple(info["label"][str(i)] for i in range(len(info["label"])))
    return ImageData(
        images=torch.cat(list(images.values())),
        labels=torch.cat(list(labels.values())),
        class_names=class_names,
        split=np.concatenate([np.full(len(labels[s]), s) for s in SPLITS]),
        name=flag,
        source=f"MedMNIST v2 {flag} ({info.get('license', 'CC BY 4.0')})",
    )


def check_split_arrays(images: dict[str, torch.Tensor], labels: dict[str, torch.Tensor], path: Path) -> None:
    """Each split has one label per image, and every split has the same image size and channels."""
    for s in SPLITS:
        if len(images[s]) != len(labels[s]):
            raise ValueError(
                f"{path}: {s}_images has {len(images[s])} images but {s}_labels has {len(labels[s])} labels"
            )
    shapes = {s: " x ".join(map(str, images[s].shape[1:])) for s in SPLITS}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"{path}: image shapes (C x H x W) differ between splits: {shapes}")

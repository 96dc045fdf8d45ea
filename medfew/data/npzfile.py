"""Reading .npz files safely: one opener, arrays read by key, and the image and label checks both npz formats share."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch


def open_npz(path: Path) -> np.lib.npyio.NpzFile:
    """``np.load`` of an existing ``path`` that must be an npz (zip) archive; arrays are never unpickled."""
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty (0 bytes); not an .npz file")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is not an npz (zip) file; write it with numpy.savez or numpy.savez_compressed")
    try:
        return np.load(path, allow_pickle=False)
    except Exception as error:  # zipfile / numpy raise BadZipFile, OSError, ValueError for damaged archives
        raise ValueError(f"cannot open {path} as an npz file: {type(error).__name__}: {error}") from error


def read_array(npz: np.lib.npyio.NpzFile, key: str, path: Path) -> np.ndarray:
    """``npz[key]``; an array that cannot be read (damaged, or pickled objects) raises naming the file and key."""
    try:
        return npz[key]
    except Exception as error:  # zlib / zipfile errors, EOFError, "Object arrays cannot be loaded ..."
        raise ValueError(f"{path}: cannot read array '{key}': {type(error).__name__}: {error}") from error


def images_to_tensor(images: np.ndarray, path: Path | str, key: str = "images") -> torch.Tensor:
    """N x H x W or N x H x W x C uint8 array -> N x C x H x W uint8 tensor (``key`` names it in errors)."""
    if images.dtype != np.uint8:
        raise TypeError(f"{path}: {key} are {images.dtype}; expected uint8")
    shape = images.shape
    if images.ndim == 3:
        images = images[:, None]
    elif images.ndim == 4 and images.shape[-1] in (1, 3):
        images = images.transpose(0, 3, 1, 2)
    else:
        raise ValueError(f"{path}: {key} has shape {shape}; expected N x H x W or N x H x W x 1|3")
    if 0 in shape:
        raise ValueError(f"{path}: {key} has shape {shape}; expected at least one image of 1 x 1 pixels")
    return torch.from_numpy(np.ascontiguousarray(images))


def labels_to_tensor(labels: np.ndarray, path: Path | str, key: str = "labels") -> torch.Tensor:
    """(N,) or (N, 1) non-negative integer class indices -> (N,) int64 tensor."""
    if labels.dtype.kind not in "iu":
        raise TypeError(f"{path}: {key} are {labels.dtype}; expected integer class indices")
    if labels.ndim not in (1, 2) or labels.ndim == 2 and labels.shape[1] != 1:
        raise ValueError(f"{path}: {key} has shape {labels.shape}; expected N or N x 1 (one class index per image)")
    labels = labels.reshape(-1)
    negative = np.flatnonzero(labels < 0)
    if len(negative):
        raise ValueError(
            f"{path}: {key} has {len(negative)} negative labels (first at index {negative[0]}: {labels[negative[0]]}); "
            "a labelled file needs a class index 0..C-1 for every image"
        )
    return torch.from_numpy(labels.astype(np.int64))

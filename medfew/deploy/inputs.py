"""New images for a model bundle, in any layout: a folder (searched recursively), one image, DICOM or npz file.

Every visible file under the input gets one ``Scan``, read or not: PNG / JPEG / BMP / TIFF images as
``medfew.data.folder`` reads them (16-bit files with the bundle's ``bits``), DICOM files as
``medfew.data.dicom`` reads them, each image of an npz file (its ``images`` array, or MedMNIST's
``<part>_images``) as one scan. Each image is brought to the bundle's preprocessing: resized to its
height x width (``preprocess.resize_images``), converted to its channels; a conversion that changes what the
image shows (colour turned grey, grey repeated to RGB, the aspect ratio changed) is said in ``note``.
A file that cannot be read has no image and says why; a file of another kind says it was not read.
An npz whose images cannot be converted at all (not uint8, not 1 or 3 channels) is an error naming
the file and the key.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from medfew.data.dicom import is_dicom_image, read_dicom
from medfew.data.folder import IMAGE_SUFFIXES, has_colour, read_image
from medfew.data.layout import visible_files
from medfew.data.npzfile import images_to_tensor, open_npz, read_array
from medfew.data.preprocess import convert_channels, resize_images
from medfew.deploy.bundle import Preprocessing


@dataclass(frozen=True)
class Scan:
    """One input: ``file`` (relative to the input folder), its (C, H, W) uint8 image after the bundle's
    preprocessing or None when it could not be read, and what happened to it (``note``, '' when nothing)."""

    file: str
    image: torch.Tensor | None
    note: str = ""


def read_scans(path: str | os.PathLike, preprocessing: Preprocessing) -> Iterator[Scan]:
    """One ``Scan`` per visible file under ``path`` (a folder) or for ``path`` itself (a file), in name order."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"input {path} not found: give a folder of images or one image file")
    files = visible_files(path) if path.is_dir() else [path]
    if not files:
        raise ValueError(f"input {path} holds no files")
    root = path if path.is_dir() else path.parent
    for file in files:
        name = file.relative_to(root).as_posix()
        if file.suffix.lower() == ".npz":
            yield from read_npz(file, name, preprocessing)
        else:
            yield read_file(file, name, preprocessing)


def read_file(file: Path, name: str, preprocessing: Preprocessing) -> Scan:
    """One image or DICOM file as a ``Scan``; a failure to read it becomes its note."""
    try:
        if file.suffix.lower() in IMAGE_SUFFIXES:
            image = read_image(file, preprocessing.bits)
        elif is_dicom_image(file):
            image = read_dicom(file)[0]
        else:
            return Scan(name, None, f"not read: not an image file ({file.suffix or 'no suffix'}); read are PNG, JPEG, BMP, TIFF, DICOM, npz")
    except (ValueError, OSError) as error:
        return Scan(name, None, f"unreadable: {str(error).replace(str(file), name)}")
    return prepared(name, image, preprocessing)


def read_npz(file: Path, name: str, preprocessing: Preprocessing) -> Iterator[Scan]:
    """Each image of an npz file (``images``, else every ``*_images`` array) as ``<file>[<key>][<i>]``."""
    try:
        npz = open_npz(file)
    except ValueError as error:
        yield Scan(name, None, f"unreadable: {str(error).replace(str(file), name)}")
        return
    keys = ["images"] if "images" in npz.files else [key for key in npz.files if key.endswith("_images")]
    if not keys:
        yield Scan(name, None, f"not read: no 'images' or '<part>_images' array (it has {', '.join(npz.files) or 'none'})")
        return
    for key in keys:
        try:
            images = images_to_tensor(read_array(npz, key, file), file, key)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{error}: these images cannot be converted to the bundle's {preprocessing.channels}-channel uint8 input") from None
        for index, image in enumerate(images):
            yield prepared(f"{name}[{key}][{index}]", image, preprocessing)


def prepared(name: str, image: torch.Tensor, preprocessing: Preprocessing) -> Scan:
    """``image`` (C, H, W) uint8 resized and converted as the bundle's training images were, and what that changed."""
    notes = []
    height, width = image.shape[-2:]
    if height * preprocessing.width != width * preprocessing.height:
        notes.append(f"resized from {width} x {height} to {preprocessing.width} x {preprocessing.height}: aspect ratio not kept")
    if preprocessing.channels == 1 and has_colour(image[None]):
        notes.append("colour image converted to grey (the model was trained on grey images)")
    elif preprocessing.channels == 3 and image.shape[0] == 1:
        notes.append("grey image repeated to 3 channels (the model was trained on colour images)")
    image = resize_images(image[None], (preprocessing.height, preprocessing.width))
    return Scan(name, convert_channels(image, preprocessing.channels)[0], "; ".join(notes))


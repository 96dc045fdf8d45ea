"""Image folders: class subfolders, train / val / test folders of them, or unlabeled images (``layout``).

Pixel policy, per image (Pillow decodes the file):
- 8-bit grey (``L``, and bilevel ``1`` as 0/255) -> 1 channel; ``RGB`` -> 3 channels;
  a palette image (``P``) without transparency -> its RGB colours.
- 16-bit grey (``I;16*``, or ``I`` with values in 0..65535) -> uint8 by linear scaling of
  0..2^bits - 1, ``round(value * 255 / (2^bits - 1))``; ``bits`` is 16 unless given (65535 -> 255).
  Scans that store 12 bits in a 16-bit container need ``bits=12``, or they come out dark: a
  folder whose brightest pixel is under 64 of 255 is named in a warning. A value over ``bits``
  is an error naming the file.
- The EXIF orientation, where a file has one (camera JPEGs), is applied: images come upright, as
  a viewer shows them. A file of several frames (a multi-page TIFF) is refused, naming it.
- Images over Pillow's decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``) are refused,
  naming the file and its pixel count; raise the limit for files you trust.
- Refused, naming the file and mode: alpha channels (``RGBA``, ``LA``, ``PA``, palette with
  transparency: compositing would be a guess), ``CMYK``, ``YCbCr``, ``LAB``, ``HSV``, float
  ``F``, and ``I`` beyond 16 bits.
- ``size`` resizes every image to size x size (antialiased bilinear; the aspect ratio is
  not kept); ``channels`` converts grey <-> RGB (see ``preprocess.convert_channels``).
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from medfew.data.dataset import ImageData
from medfew.data.layout import FileKind, list_files, read_groups, resolve_folder
from medfew.data.preprocess import convert_channels, resize_images

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
IMAGES = FileKind("PNG / JPEG / BMP / TIFF images", lambda path: path.suffix.lower() in IMAGE_SUFFIXES)
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
log = logging.getLogger(__name__)


def read_image(path: Path, bits: int = 16) -> torch.Tensor:
    """One image file -> (C, H, W) uint8 tensor with C in {1, 3} (policy in the module docstring)."""
    with decode(path) as image:
        ImageOps.exif_transpose(image, in_place=True)  # upright as a viewer shows it (camera JPEGs)
        array = to_uint8(image, path, bits)
    return torch.from_numpy(array).permute(2, 0, 1).contiguous() if array.ndim == 3 else torch.from_numpy(array)[None]


def decode(path: Path) -> Image.Image:
    """Open and fully decode one file; a corrupt, truncated, oversized or multi-frame file raises naming it."""
    with warnings.catch_warnings(), open(path, "rb") as handle:
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(handle)
            image.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
            pixels = re.search(r"\((\d+) pixels\)", str(error)).group(1)
            raise ValueError(
                f"image {path} has {pixels} pixels, over Pillow's decompression-bomb limit of {Image.MAX_IMAGE_PIXELS} "
                f"pixels; if you trust the file, raise PIL.Image.MAX_IMAGE_PIXELS (or set it to None) before loading"
            ) from error
        except Exception as error:  # Pillow raises OSError, SyntaxError, ValueError, ... for bad files
            reason = f"{type(error).__name__}: {error}"
            raise ValueError(f"cannot read image {path}: corrupt or truncated ({reason})") from error
        frames = getattr(image, "n_frames", 1)  # counting a TIFF's pages reads the open file
    if frames > 1:
        raise ValueError(
            f"image {path} has {frames} frames (a multi-page TIFF or an animated image); "
            "medfew reads single-frame images: save each frame as its own file"
        )
    return image


def to_uint8(image: Image.Image, path: Path, bits: int = 16) -> np.ndarray:
    """A decoded Pillow image -> (H, W) or (H, W, 3) uint8 array; 16-bit values span 0..2^bits - 1."""
    mode = image.mode
    if mode == "P" and "transparency" in image.info:
        mode = "P with transparency"
    elif mode == "P":
        return np.array(image.convert("RGB"))
    if mode in ("L", "RGB"):
        return np.array(image)
    if mode == "1":
        return np.array(image.convert("L"))
    if mode in SIXTEEN_BIT_MODES:
        values, top = np.asarray(image).astype(np.int64), 2**bits - 1
        if values.size and (values.min() < 0 or values.max() > top):
            raise ValueError(
                f"{path}: mode {mode} values span {values.min()}..{values.max()}; expected {bits}-bit (0..{top}, data.source.bits)"
            )
        return ((values * 255 + top // 2) // top).astype(np.uint8)  # round(value * 255 / top)
    if mode in ALPHA_MODES or mode == "P with transparency":
        hint = "it has an alpha channel; flatten it to RGB or grey first"
    else:
        hint = "convert it to 8/16-bit grey or RGB first"
    raise ValueError(f"unsupported image mode {mode} in {path}: {hint}")


def stack_images(
    images: Iterable[torch.Tensor], files: Sequence[Path], size: int | None, channels: int | None
) -> torch.Tensor:
    """(C, H, W) uint8 images, one per file -> one (N, C, H, W) tensor after the size and channel policy.

    Each image is resized and converted as it arrives and copied into the output, allocated once,
    so a lazy ``images`` (a generator that reads the files) holds one image at full resolution at a
    time. Without ``size`` every image must have the same height and width; without ``channels``
    the same channel count. Otherwise the error names two files that differ.
    """
    stacked, images, coloured = None, iter(images), []
    for index, file in enumerate(files):
        image = next(images)[None]
        if size is not None:
            image = resize_images(image, size)
        if channels == 1 and has_colour(image):
            coloured.append(file)
        if channels is not None:
            image = convert_channels(image, channels)
        if stacked is None:
            stacked = torch.empty((len(files), *image.shape[1:]), dtype=torch.uint8)
        elif image.shape[1:] != stacked.shape[1:]:
            what, fix = ("channels", "channels=1 or 3") if image.shape[1] != stacked.shape[1] else ("size", "size=<pixels>")
            raise ValueError(
                f"images differ in {what}: {files[0]} is {describe(stacked[:1])}, {file} is {describe(image)}; "
                f"pass {fix} to convert them all"
            )
        stacked[index] = image[0]
    if coloured:
        log.warning(
            "%s and %d more of the %d images are in colour; channels=1 (data.channels) turns them grey: "
            "set data.channels=3 to keep their colour", coloured[0], len(coloured) - 1, len(files),
        )
    return stacked


def has_colour(image: torch.Tensor) -> bool:
    """Whether a (1, C, H, W) uint8 image has colour: its channels differ by over one level on average
    (a grey scan saved as RGB, JPEG noise included, does not)."""
    if image.shape[1] == 1:
        return False
    return (image.amax(dim=1).int() - image.amin(dim=1).int()).float().mean().item() > 1


def describe(image: torch.Tensor) -> str:
    """'3 x 64 x 48' for a (1, C, H, W) tensor."""
    return " x ".join(str(n) for n in image.shape[1:])


def load_image_folder(
    path: str | os.PathLike,
    size: int | None = None,
    channels: int | None = None,
    labelled: bool = True,
    root: str | os.PathLike | None = None,
    bits: int = 16,
) -> ImageData:
    """Load PNG/JPEG/BMP/TIFF images from ``<root>/path`` (or an absolute ``path``).

    Args:
        path: with ``labelled``, a folder with one subfolder per class (class names are the
            sorted subfolder names; images are found recursively inside each), or with
            train/, test/ (and val/) folders of class subfolders: the official split;
            otherwise every image under the folder, with labels ``UNLABELED``. A
            ``groups.csv`` in it sets groups (``medfew.data.layout``).
        size: resize every image to size x size; required when image sizes differ.
        channels: 1 or 3 to convert grey / RGB; required when a folder mixes them.
        labelled: read class subfolders (True) or a pool of unlabeled images (False).
        bits: the bits 16-bit files use (8 to 16): 12 for a 12-bit scan in a 16-bit PNG.
        root: data root used for a relative ``path`` (default ``$MEDFEW_DATA``).

    Returns:
        ImageData with (N, C, H, W) uint8 images, the split and groups of the layout, and
        ``filenames`` relative to the folder.
    """
    if not 8 <= bits <= 16:
        raise ValueError(f"bits must be 8 to 16 (the bits a 16-bit file's values use), got {bits}")
    folder = resolve_folder(path, root)
    listing = list_files(folder, IMAGES, labelled)
    files = listing.files
    images = stack_images((read_image(f, bits) for f in files), files, size, channels)
    if images.max() < 64:
        log.warning(
            "%s: the brightest pixel of its %d images is %d of 255; 16-bit files storing fewer bits (a 12-bit scan) "
            "come out dark unless data.source.bits says how many they use", folder, len(files), int(images.max()),
        )
    return ImageData(
        images=images,
        labels=listing.labels,
        class_names=listing.class_names,
        split=listing.split,
        groups=read_groups(folder, files),
        name=folder.name,
        source=str(folder),
        filenames=np.array([str(f.relative_to(folder)) for f in files]),
    )

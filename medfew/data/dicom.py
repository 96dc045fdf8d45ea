"""DICOM folders: single-frame scans as uint8 images, unlabeled or labelled by subfolder.

Pixel pipeline per file (DICOM PS3.3 C.11):
1. Modality LUT: stored values -> modality units (e.g. Hounsfield) with RescaleSlope /
   RescaleIntercept (or a Modality LUT Sequence), via ``pydicom.pixels.apply_modality_lut``.
2. VOI windowing to 0..255: with WindowCenter c / WindowWidth w (the first pair when
   several are listed) the linear function of C.11.2.1.2.1,
   ``y = clip(((x - (c - 0.5)) / (w - 1) + 0.5) * 255, 0, 255)``; without a window, the
   image's own min..max is stretched to 0..255 (a constant image gives 0). VOI LUT
   sequences and the SIGMOID function are not applied (the linear window is used).
3. MONOCHROME1 (white = low values) is inverted, ``255 - y``, so bright means high signal.
Colour files with 8 bits per sample are kept as RGB: RGB as it is, YCbCr (``YBR_FULL``,
``YBR_FULL_422``: ultrasound, endoscopy, JPEG-compressed scans) as pydicom converts it. Multi-frame files, other
photometric interpretations, and files without pixel data are refused, naming the file.
PatientID becomes ``groups`` (integer codes in sorted id order; a file without one gets a
group of its own) so splits can keep a patient's scans together; a ``groups.csv`` in the
folder replaces PatientIDs (folder layouts and groups.csv: ``medfew.data.layout``). Classes whose
files differ in Modality or in scaling (windowed in one class, min-max stretched in another) are
named in a warning: a classifier could learn the scaling instead of the anatomy.
Files are read by suffix (.dcm, .dicom, any case) or, whatever their name (scanners and PACS
exports often write none), by the DICM marker of the DICOM file format (PS3.10 7.1); a
DICOMDIR index is not an image and is skipped.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pydicom
import torch
from pydicom.misc import is_dicom
from pydicom.pixels import apply_modality_lut

from medfew.data.dataset import ImageData, group_codes
from medfew.data.folder import stack_images
from medfew.data.layout import FileKind, list_files, read_groups, resolve_folder

log = logging.getLogger(__name__)
DICOM_SUFFIXES = (".dcm", ".dicom")
PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def is_dicom_image(path: Path) -> bool:
    return path.suffix.lower() in DICOM_SUFFIXES or (path.name.upper() != "DICOMDIR" and is_dicom(path))


COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422")  # ds.pixel_array hands YCbCr over as RGB (its as_rgb default)
DICOM = FileKind("DICOM files (.dcm, .dicom, or the DICM marker)", is_dicom_image)


def window_to_uint8(values: np.ndarray, center: float | None, width: float | None) -> np.ndarray:
    """Modality values (H, W) -> uint8 with the DICOM linear VOI window, or min-max without one."""
    values = values.astype(np.float64)
    if center is not None and width is not None:
        scaled = (values - (center - 0.5)) / max(width - 1, 1e-6) + 0.5
    else:
        low, high = values.min(), values.max()
        scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
    return np.clip(np.round(scaled * 255), 0, 255).astype(np.uint8)


def first_value(value) -> float | None:
    """A DICOM number that may be multi-valued (its first value), or None when absent."""
    if value is None or value == "":
        return None
    return float(value[0] if isinstance(value, pydicom.multival.MultiValue) else value)


def read_dicom(path: Path) -> tuple[torch.Tensor, str | None, str]:
    """One DICOM file -> ((C, H, W) uint8 image, PatientID or None, its Modality and how its pixels were
    mapped to 0..255: 'CT windowed', 'MR min-max stretched'); pipeline in the module docstring."""
    try:
        ds = pydicom.dcmread(path)
    except Exception as error:  # pydicom raises InvalidDicomError, EOFError, ... for bad files
        raise ValueError(f"cannot read DICOM file {path}: {type(error).__name__}: {error}") from error
    if not any(keyword in ds for keyword in PIXEL_KEYWORDS):
        raise ValueError(f"DICOM file {path} has no pixel data (modality {ds.get('Modality', '?')}); not an image")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise ValueError(f"DICOM file {path} has {frames} frames; medfew reads single-frame images")
    try:
        pixels = ds.pixel_array
    except Exception as error:  # missing decoder plugins, damaged data
        syntax = ds.file_meta.get("TransferSyntaxUID", "unknown") if hasattr(ds, "file_meta") else "unknown"
        raise ValueError(f"cannot decode the pixel data of {path} (transfer syntax {syntax}): {error}") from error
    interpretation = str(ds.get("PhotometricInterpretation", ""))
    modality = str(ds.get("Modality", "") or "no Modality")
    if interpretation in COLOUR and pixels.dtype == np.uint8:
        return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1))), patient_id(ds), f"{modality} colour as stored"
    if interpretation not in ("MONOCHROME1", "MONOCHROME2"):
        raise ValueError(
            f"DICOM file {path}: photometric interpretation {interpretation or 'missing'} "
            f"({pixels.dtype}) is not supported; expected MONOCHROME1/2 or 8-bit {' / '.join(COLOUR)}"
        )
    center, width = first_value(ds.get("WindowCenter")), first_value(ds.get("WindowWidth"))
    if width is not None and width < 1:
        raise ValueError(f"DICOM file {path}: WindowWidth {width} < 1 is invalid")
    image = window_to_uint8(apply_modality_lut(pixels, ds), center, width)
    if interpretation == "MONOCHROME1":
        image = 255 - image
    scaling = "windowed" if center is not None and width is not None else "min-max stretched"
    return torch.from_numpy(image)[None], patient_id(ds), f"{modality} {scaling}"


def warn_mixed_scans(folder: Path, class_names: tuple[str, ...], labels: torch.Tensor, scans: list[str]) -> None:
    """Log when the classes differ in Modality or in how their pixels were mapped to 0..255 (``scans``,
    one 'CT windowed' per file): a classifier can then learn the scaling instead of the anatomy."""
    by_class = {name: Counter(s for s, label in zip(scans, labels.tolist()) if label == c) for c, name in enumerate(class_names)}
    if len({frozenset(kinds) for kinds in by_class.values()}) > 1:
        shown = "; ".join(f"{name}: {', '.join(f'{n} {kind}' for kind, n in kinds.most_common())}" for name, kinds in by_class.items())
        log.warning(
            "%s: the classes differ in Modality or in how their pixels were scaled to 0..255 (%s). A classifier can tell "
            "them apart by that instead of by the anatomy: keep one modality and one scaling (WindowCenter / WindowWidth "
            "in every file, or in none) across the classes", folder, shown,
        )  # fmt: skip


def patient_id(ds: pydicom.Dataset) -> str | None:
    value = str(ds.get("PatientID", "") or "").strip()
    return value or None


def load_dicom_folder(
    path: str | os.PathLike,
    size: int | None = None,
    labelled: bool = True,
    channels: int | None = None,
    root: str | os.PathLike | None = None,
) -> ImageData:
    """Load the DICOM files under ``<root>/path`` (or an absolute ``path``; which files: module docstring).

    Args:
        path: with ``labelled``, a folder with one subfolder per class (files searched
            recursively inside each), or train/, test/ (and val/) folders of class
            subfolders: the official split; otherwise every DICOM file under it, unlabeled.
        size: resize every image to size x size; required when image sizes differ.
        channels: 1 or 3 to convert grey / RGB (3 repeats a grey scan).
        labelled: read class subfolders (True) or an unlabeled pretraining pool (False).
        root: data root used for a relative ``path`` (default ``$MEDFEW_DATA``).

    Returns:
        ImageData with (N, C, H, W) uint8 images, the split of the layout, PatientID codes
        as ``groups`` (or those of a ``groups.csv`` in the folder, which replaces them) and
        ``filenames`` relative to the folder.
    """
    folder = resolve_folder(path, root)
    listing = list_files(folder, DICOM, labelled)
    files = listing.files
    ids: list[str | None] = []
    scans: list[str] = []

    def read(file: Path) -> torch.Tensor:
        image, patient, scan = read_dicom(file)
        ids.append(patient)
        scans.append(scan)
        return image

    images = stack_images(map(read, files), files, size, channels)
    warn_mixed_scans(folder, listing.class_names, listing.labels, scans)
    groups = read_groups(folder, files)
    return ImageData(
        images=images,
        labels=listing.labels,
        class_names=listing.class_names,
        split=listing.split,
        groups=group_codes(ids) if groups is None else groups,
        name=folder.name,
        source=str(folder),
        filenames=np.array([str(f.relative_to(folder)) for f in files]),
    )

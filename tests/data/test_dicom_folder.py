"""DICOM files written here go through rescale + window (or min-max) to hand-computed uint8 values;
PatientIDs keep a patient in one part."""

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import convert_color_space
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, RLELossless, generate_uid

import medfew.data.dicom
from medfew.data import UNLABELED, load_dicom_folder, make_splits

# Stored values; with slope 2 and intercept -1024 they are [[-1024, 0, 512], [1536, 2048, 3072]] HU.
STORED = np.array([[0, 512, 768], [1280, 1536, 2048]], dtype=np.uint16)
# Window c = 1024.5, w = 2049: y = ((x - 1024) / 2048 + 0.5) * 255, clipped, rounded.
WINDOWED = [[0, 0, 64], [191, 255, 255]]
# No window: min-max of the HU values, y = (x + 1024) / 4096 * 255.
MIN_MAX = [[0, 64, 96], [159, 191, 255]]


def write_dicom(
    path: Path,
    pixels: np.ndarray | None = STORED,
    window: tuple[float | list[float], float | list[float]] | None = (1024.5, 2049),
    rescale: tuple[float, float] = (2, -1024),
    interpretation: str = "MONOCHROME2",
    patient: str | None = "P1",
    modality: str = "CT",
) -> Path:
    """A single-frame file (CT by default) with 16-bit stored values (signed when ``pixels`` is int16)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = CTImageStorage, meta.MediaStorageSOPInstanceUID, modality
    if patient is not None:
        ds.PatientID = patient
    if pixels is not None:
        ds.Rows, ds.Columns = pixels.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, interpretation
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        ds.PixelRepresentation = int(pixels.dtype == np.int16)
        ds.RescaleSlope, ds.RescaleIntercept = rescale
        if window is not None:
            ds.WindowCenter, ds.WindowWidth = window
        ds.PixelData = pixels.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.parametrize("window", [(1024.5, 2049), ([1024.5, 40], [2049, 400])])  # several: the first
def test_rescale_then_window(tmp_path: Path, window) -> None:
    write_dicom(tmp_path / "scan.dcm", window=window)
    data = load_dicom_folder(tmp_path, labelled=False)
    assert data.images.shape == (1, 1, 2, 3)
    assert data.images[0, 0].tolist() == WINDOWED


def test_min_max_without_window_and_monochrome1_inverted(tmp_path: Path) -> None:
    write_dicom(tmp_path / "a.dcm", window=None)
    write_dicom(tmp_path / "b.dcm", window=None, interpretation="MONOCHROME1")
    data = load_dicom_folder(tmp_path, labelled=False)
    assert data.images[0, 0].tolist() == MIN_MAX
    assert data.images[1, 0].tolist() == (255 - np.array(MIN_MAX)).tolist()


def test_signed_pixels(tmp_path: Path) -> None:
    write_dicom(tmp_path / "s.dcm", pixels=np.array([[-100, 0, 100, 700]], np.int16), window=None, rescale=(1, 0))
    assert load_dicom_folder(tmp_path, labelled=False).images[0, 0].tolist() == [[0, 32, 64, 255]]


@pytest.mark.parametrize(
    ("interpretation", "syntax"), [("RGB", ExplicitVRLittleEndian), ("YBR_FULL", ExplicitVRLittleEndian), ("YBR_FULL", RLELossless)]
)
def test_colour_scans_come_as_rgb(tmp_path: Path, interpretation: str, syntax: str) -> None:
    """An ultrasound frame (orange on a blue band), stored as RGB or as YCbCr, compressed or not."""
    rgb = np.zeros((8, 8, 3), dtype=np.uint8)
    rgb[...] = (200, 120, 30)
    rgb[:2] = (10, 40, 220)
    write_dicom(tmp_path / "us.dcm", pixels=None)
    ds = pydicom.dcmread(tmp_path / "us.dcm")
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PlanarConfiguration = 8, 8, 3, 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PhotometricInterpretation = interpretation
    ds.PixelData = (rgb if interpretation == "RGB" else convert_color_space(rgb, "RGB", interpretation)).tobytes()
    ds["PixelData"].VR = "OB"
    if syntax != ExplicitVRLittleEndian:
        ds.compress(syntax)
    ds.save_as(tmp_path / "us.dcm", enforce_file_format=True)
    image = load_dicom_folder(tmp_path, labelled=False).images[0]
    assert image.shape == (3, 8, 8)
    assert (image.permute(1, 2, 0).int() - torch.from_numpy(rgb).int()).abs().max() <= 2  # YCbCr rounding


def test_labelled_by_subfolder_with_patient_groups(tmp_path: Path) -> None:
    write_dicom(tmp_path / "normal" / "series1" / "x.dcm", patient="P2")
    write_dicom(tmp_path / "tumour" / "y.DCM", patient="P1")
    write_dicom(tmp_path / "tumour" / "z.dcm", patient=None)
    data = load_dicom_folder(tmp_path, channels=3)
    assert data.class_names == ("normal", "tumour")
    assert data.labels.tolist() == [0, 1, 1]
    assert data.groups.tolist() == [1, 0, 2]  # sorted ids P1 -> 0, P2 -> 1; no id -> a group of its own
    assert list(data.filenames) == ["normal/series1/x.dcm", "tumour/y.DCM", "tumour/z.dcm"]
    assert data.images.shape == (3, 3, 2, 3) and data.images[0, 2].tolist() == WINDOWED


def test_classes_scanned_or_scaled_differently_are_named(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    for i in range(2):
        write_dicom(tmp_path / "normal" / f"{i}.dcm", pixels=random_pixels(i))
        write_dicom(tmp_path / "tumour" / f"{i}.dcm", pixels=random_pixels(i), window=None, modality="MR")
    load_dicom_folder(tmp_path)
    assert "the classes differ in Modality or in how their pixels were scaled to 0..255 (normal: 2 CT windowed; tumour: 2 MR min-max stretched)" in caplog.text
    caplog.clear()
    for i in range(2, 4):  # both classes mixed alike
        write_dicom(tmp_path / "normal" / f"{i}.dcm", pixels=random_pixels(i), window=None, modality="MR")
        write_dicom(tmp_path / "tumour" / f"{i}.dcm", pixels=random_pixels(i))
    load_dicom_folder(tmp_path)
    assert "differ in Modality" not in caplog.text


def test_resize(tmp_path: Path) -> None:
    write_dicom(tmp_path / "a.dcm")
    write_dicom(tmp_path / "b.dcm", pixels=np.zeros((4, 5), np.uint16))
    with pytest.raises(ValueError, match="differ in size"):
        load_dicom_folder(tmp_path, labelled=False)
    data = load_dicom_folder(tmp_path, size=8, labelled=False)
    assert data.images.shape == (2, 1, 8, 8) and data.labels.tolist() == [UNLABELED, UNLABELED]


def test_scans_are_resized_as_they_are_read(tmp_path: Path, one_at_a_time, monkeypatch: pytest.MonkeyPatch) -> None:
    for i, patient in enumerate(("P1", "P1", "P2")):
        write_dicom(tmp_path / f"{i}.dcm", patient=patient)
    read = one_at_a_time(medfew.data.dicom.read_dicom, image_of=lambda result: result[0])
    monkeypatch.setattr(medfew.data.dicom, "read_dicom", read)
    data = load_dicom_folder(tmp_path, size=4, labelled=False)
    assert len(read.reads) == 3 and data.images.shape == (3, 1, 4, 4)
    assert data.groups.tolist() == [0, 0, 1]


def test_no_pixel_data_is_named(tmp_path: Path) -> None:
    write_dicom(tmp_path / "ok.dcm")
    empty = write_dicom(tmp_path / "report.dcm", pixels=None)
    with pytest.raises(ValueError, match=f"DICOM file {empty} has no pixel data"):
        load_dicom_folder(tmp_path, labelled=False)


def test_not_dicom_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"not a dicom file at all")
    with pytest.raises(ValueError, match=f"cannot read DICOM file {bad}"):
        load_dicom_folder(tmp_path, labelled=False)


def test_files_without_suffix_are_read_by_their_marker(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_dicom(tmp_path / "PA0" / "ST0" / "IM000001", patient="P1")
    write_dicom(tmp_path / "1.2.840.113619.2.55.3.6046", window=None, patient="P2")  # named by its UID
    write_dicom(tmp_path / "DICOMDIR", pixels=None)  # an index of the others, no image
    (tmp_path / "readme.txt").write_text("not a scan")
    data = load_dicom_folder(tmp_path, labelled=False)
    assert list(data.filenames) == ["1.2.840.113619.2.55.3.6046", "PA0/ST0/IM000001"]
    assert data.images[0, 0].tolist() == MIN_MAX and data.images[1, 0].tolist() == WINDOWED
    assert "2 files not read (1 no suffix, 1 .txt): DICOMDIR, readme.txt. Read are DICOM files" in caplog.text
    assert "class folders" not in caplog.text  # an unlabelled folder has none


def test_empty_and_missing_folders(tmp_path: Path) -> None:
    (tmp_path / "normal").mkdir()
    with pytest.raises(ValueError, match=f"class folder {tmp_path / 'normal'} is empty"):
        load_dicom_folder(tmp_path)
    with pytest.raises(ValueError, match=r"holds no DICOM files \(.dcm, .dicom, or the DICM marker\)"):
        load_dicom_folder(tmp_path, labelled=False)
    with pytest.raises(FileNotFoundError, match="missing"):
        load_dicom_folder(tmp_path / "missing")


def test_data_config_instantiates(tmp_path: Path) -> None:
    write_dicom(tmp_path / "scan.dcm")
    configs = Path(__file__).resolve().parents[2] / "configs"
    with initialize_config_dir(str(configs), version_base="1.3"):
        cfg = compose("audit", overrides=["data=dicom_folder", f"data.source.path={tmp_path}", "data.channels=3"])
    data = instantiate(cfg.data.source)
    assert data.images.shape == (1, 3, 64, 64) and len(data.class_names) == 0


def random_pixels(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 4096, (8, 8)).astype(np.uint16)


def test_patients_never_cross_parts(tmp_path: Path) -> None:
    """2 classes x 6 patients x 2 scans: stratified and 3-fold parts hold whole patients."""
    for n in range(24):
        label, patient = ("normal", "tumour")[n // 12], f"P{n // 2:02d}"
        write_dicom(tmp_path / label / f"{n:02d}.dcm", pixels=random_pixels(n), window=None, patient=patient)
    data = load_dicom_folder(tmp_path)
    assert data.groups.tolist() == [n // 2 for n in range(24)]
    fractions = {"train": 0.5, "val": 0.25, "test": 0.25}
    splits = make_splits(data, "stratified", fractions) + make_splits(data, "kfold", fractions, folds=3, repeats=2)
    for split in splits:
        for patient in data.groups.unique():
            assert len(set(split.data.split[(data.groups == patient).numpy()])) == 1
        for part in ("train", "val", "test"):
            assert set(split.data.labels[torch.from_numpy(split.data.split == part)].tolist()) == {0, 1}
    tests = np.stack([s.data.split == "test" for s in splits[1:]]).reshape(2, 3, -1)
    assert (tests.sum(1) == 1).all()


def test_split_layout_and_groups_csv(tmp_path: Path) -> None:
    """train/ and test/ folders are the official split; groups.csv replaces PatientIDs."""
    write_dicom(tmp_path / "train" / "normal" / "a.dcm", pixels=random_pixels(0), patient="P1")
    write_dicom(tmp_path / "train" / "tumour" / "b.dcm", pixels=random_pixels(1), patient="P1")
    write_dicom(tmp_path / "test" / "tumour" / "c.dcm", pixels=random_pixels(2), patient="P2")
    data = load_dicom_folder(tmp_path)
    assert data.split.tolist() == ["train", "train", "test"] and data.class_names == ("normal", "tumour")
    assert data.groups.tolist() == [0, 0, 1]
    (tmp_path / "groups.csv").write_text("file,group\ntrain/tumour/b.dcm,x\ntest/tumour/c.dcm,x\n")
    assert load_dicom_folder(tmp_path).groups.tolist() == [1, 0, 0]  # x -> 0; a.dcm unlisted: its own group

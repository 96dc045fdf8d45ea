"""The real files in ../shared/data load with the documented counts, classes and splits."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from medfew.data import ImageData, load_dicom_folder, load_image_folder, load_labelled_npz, load_medmnist

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def split_counts(data: ImageData) -> dict[str, int]:
    return {name: int((data.split == name).sum()) for name in data.split_names()}


def test_breastmnist(breastmnist: ImageData) -> None:
    assert split_counts(breastmnist) == {"train": 546, "val": 78, "test": 156}
    assert breastmnist.class_names == ("malignant", "normal, benign")
    assert breastmnist.images.shape == (780, 1, 28, 28)
    assert breastmnist.class_counts().tolist() == [210, 570]  # 27 % malignant


def test_pneumoniamnist(pneumoniamnist: ImageData) -> None:
    assert split_counts(pneumoniamnist) == {"train": 4708, "val": 524, "test": 624}
    assert pneumoniamnist.class_names == ("normal", "pneumonia")
    assert pneumoniamnist.images.shape == (5856, 1, 28, 28)


def test_bloodcells(bloodcells: ImageData) -> None:
    assert bloodcells.class_counts().tolist() == [250] * 8
    assert bloodcells.class_names[:2] == ("basophil", "eosinophil") and bloodcells.n_classes == 8
    assert bloodcells.images.shape == (2000, 3, 64, 64)
    assert bloodcells.filenames[0] == "basophil/BA_101611.jpg"


def test_brain_mri(brain_mri: ImageData) -> None:
    assert split_counts(brain_mri) == {"train": 5501, "test": 1092}
    assert brain_mri.class_names == ("glioma", "meningioma", "notumor", "pituitary")
    assert brain_mri.images.shape == (6593, 1, 64, 64)
    assert brain_mri.images.float().mean().item() == pytest.approx(46.848, abs=0.001)  # pins the pixels


def test_subset_keeps_filenames(brain_mri: ImageData) -> None:
    test = brain_mri.select_split("test")
    assert len(test) == 1092 and all(f.startswith("Testing/") for f in test.filenames)
    first = int(np.flatnonzero(brain_mri.split == "test")[0])
    assert torch.equal(test.images[0], brain_mri.images[first]) and test.filenames[0] == brain_mri.filenames[first]


MISSING = {
    "breastmnist": lambda root: load_medmnist("breastmnist", root=root),
    "bloodcells": lambda root: load_labelled_npz("absent.npz", root=root),
    "image_folder": lambda root: load_image_folder("absent", root=root),
    "dicom_folder": lambda root: load_dicom_folder("absent", root=root),
}


@pytest.mark.parametrize("config", MISSING)
def test_missing_data_names_keys_its_data_config_has(config, tmp_path) -> None:
    with pytest.raises(FileNotFoundError) as error:
        MISSING[config](str(tmp_path))
    message = str(error.value).replace(str(tmp_path), "")
    keys = re.findall(r"\b(?:data|paths)\.[a-z_.]*[a-z_]", message)
    assert "MEDFEW_DATA" in message and "data.source.root" in keys
    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        cfg = compose("config", overrides=[f"data={config}"])
    for key in keys:
        parent, name = key.rsplit(".", 1)
        assert name in OmegaConf.select(cfg, parent).keys(), f"{key}, named in {message!r}, is not a key of data={config}"


def test_missing_files_are_named(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'breastmnist.npz'}.*place breastmnist.npz"):
        load_medmnist("breastmnist", root=str(tmp_path))
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'absent.npz'} not found"):
        load_labelled_npz("absent.npz", root=str(tmp_path))
    with pytest.raises(KeyError, match="unknown MedMNIST flag 'brestmnist'"):
        load_medmnist("brestmnist", root=str(tmp_path))

"""Shared fixtures: real data from ../shared/data (skip on a user's machine, fail under CI)."""

import errno
import os
from functools import partial
from pathlib import Path

import pytest
import torch
from PIL import Image
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from medfew import files
from medfew.data import ImageData, class_split, load_labelled_npz, load_medmnist, preprocess
from medfew.models import create_backbone

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SHARED_DATA = Path(os.environ.get("MEDFEW_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")


def require_file(name: str) -> Path:
    """Path of a real data file; a missing file skips the test, or fails it under CI=true."""
    path = SHARED_DATA / name
    if not path.exists():
        message = f"real data file {path} is missing (set MEDFEW_DATA to the folder holding {name})"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def shared_file():
    """``require_file`` as a fixture, for tests that need a real file's path."""
    return require_file


@pytest.fixture(scope="session")
def breastmnist() -> ImageData:
    return load_medmnist("breastmnist", root=str(require_file("breastmnist.npz").parent))


@pytest.fixture(scope="session")
def pneumoniamnist() -> ImageData:
    return load_medmnist("pneumoniamnist", root=str(require_file("pneumoniamnist.npz").parent))


@pytest.fixture(scope="session")
def bloodcells() -> ImageData:
    return load_labelled_npz(str(require_file("pbc_bloodcells_64.npz")))


@pytest.fixture(scope="session")
def brain_mri() -> ImageData:
    return load_labelled_npz(str(require_file("brain_tumor_mri_64.npz")))


@pytest.fixture(scope="session")
def tiny_conv4() -> partial:
    """Factory of an 8-channel Conv-4 for 3 x 32 x 32 images."""
    return partial(create_backbone, "conv4", in_chans=3, image_size=32, model_kwargs={"hidden": 8})


@pytest.fixture(scope="session")
def pbc_split(bloodcells: ImageData) -> dict[str, ImageData]:
    """base (3 classes), val (2) and novel (3) PBC classes at 32 x 32 RGB."""
    split = class_split(
        bloodcells.class_names,
        base=["basophil", "erythroblast", "platelet"],
        val=["eosinophil", "ig"],
        novel=["lymphocyte", "monocyte", "neutrophil"],
    )
    return split.apply(preprocess(bloodcells, image_size=32))


@pytest.fixture(scope="session")
def pbc_png_folder(bloodcells: ImageData, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user's own folder: 4 PBC classes x 15 RGB PNGs (64 x 64), one subfolder per class, no split."""
    folder = tmp_path_factory.mktemp("pbc_png")
    for label, name in enumerate(bloodcells.class_names[:4]):
        (folder / name).mkdir()
        members = torch.nonzero(bloodcells.labels == label).flatten()[:15]
        for i in members.tolist():
            Image.fromarray(bloodcells.images[i].permute(1, 2, 0).numpy()).save(folder / name / f"cell{i}.png")
    return folder


@pytest.fixture
def tiny_data() -> ImageData:
    """4 classes x 10 random 1 x 32 x 32 images, for unit logic."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (40, 1, 32, 32), dtype=torch.uint8, generator=generator)
    labels = torch.arange(4).repeat_interleave(10)
    return ImageData(images, labels, ("a", "b", "c", "d"), name="tiny")


def compose_root_config(name: str, out: Path, overrides: list[str]) -> DictConfig:
    """configs/<name>.yaml as ``@hydra.main`` sees it, output in ``out``, W&B off unless
    ``overrides`` choose a logger; the Hydra state is set as in a run."""
    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        paths = [f"paths.output_dir={out}", f"paths.root_dir={out}", f"paths.data_dir={SHARED_DATA}"]
        quiet = [] if any(o.startswith("logger=") for o in overrides) else ["logger=none"]
        cfg = compose(name, overrides=[*paths, *quiet, *overrides], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg.hydra
    return cfg


@pytest.fixture
def compose_root():
    """``compose_root(name, out, overrides)``; the Hydra state it sets is cleared after the test."""
    yield compose_root_config
    HydraConfig.instance().cfg = None


@pytest.fixture(scope="module")
def compose_root_module():
    """``compose_root`` for module-scoped fixtures; the Hydra state is cleared after the module."""
    yield compose_root_config
    HydraConfig.instance().cfg = None


@pytest.fixture
def full_disk(monkeypatch):
    """From the second save of results.csv on, every save fails as on a full disk; returns the
    list of save attempts (its ``restore()`` gives back the real ``os.replace``)."""
    real_replace, saves = os.replace, []

    def replace(source, target):
        if Path(target).name == "results.csv":
            saves.append(target)
            if len(saves) > 1:
                raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(source, target)

    monkeypatch.setattr(files.os, "replace", replace)
    return saves

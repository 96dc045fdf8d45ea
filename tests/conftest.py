"""Shared fixtures: real data from ../shared/data (skip on a user's machine, fail under CI)."""

import os
from pathlib import Path

import pytest
import torch

from medfew.data import ImageData, load_labelled_npz, load_medmnist

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


@pytest.fixture
def tiny_data() -> ImageData:
    """4 classes x 10 random 1 x 32 x 32 images, for unit logic."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (40, 1, 32, 32), dtype=torch.uint8, generator=generator)
    labels = torch.arange(4).repeat_interleave(10)
    return ImageData(images, labels, ("a", "b", "c", "d"), name="tiny")

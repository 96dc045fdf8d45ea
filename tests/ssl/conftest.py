"""Tiny real data and a tiny backbone for the SSL tests."""

import functools
import os
from pathlib import Path

import pytest
from medfew.data import ImageData, label_budget, preprocess
from medfew.models import create_backbone

TINY_HEADS = {
    "simclr": dict(hidden_dim=32, output_dim=16),
    "moco": dict(hidden_dim=32, output_dim=16, queue_size=32),
    "byol": dict(hidden_dim=32, output_dim=16),
    "simsiam": dict(hidden_dim=32, output_dim=32, predictor_dim=16),
    "dino": dict(hidden_dim=32, bottleneck_dim=16, output_dim=64, n_local=2),
    "barlow_twins": dict(hidden_dim=32, output_dim=32),
    "vicreg": dict(hidden_dim=32, output_dim=32),
}



@pytest.fixture(scope="session")
def tiny_heads() -> dict[str, dict]:
    """Head sizes per method small enough for a step in well under a second on two CPU cores."""
    return TINY_HEADS


@pytest.fixture(scope="session")
def tiny_backbone():
    """A zero-argument builder of a Conv-4 (8 channels) for 3 x 32 x 32 images."""
    return functools.partial(create_backbone, "conv4", 3, 32, model_kwargs={"hidden": 8})


@pytest.fixture(scope="session")
def pbc32(bloodcells: ImageData) -> ImageData:
    """4 PBC blood-cell images per class (32 in all), resized to 32 x 32."""
    return preprocess(bloodcells.subset(label_budget(bloodcells, per_class=4, seed=0).labelled), 32)


@pytest.fixture(scope="session")
def data_env(bloodcells: ImageData) -> dict[str, str]:
    """Environment for a subprocess that loads the real PBC file (skips / fails like ``bloodcells``)."""
    shared = os.environ.get("MEDFEW_DATA") or str(Path(__file__).resolve().parents[3] / "shared" / "data")
    return os.environ | {"MEDFEW_DATA": shared}

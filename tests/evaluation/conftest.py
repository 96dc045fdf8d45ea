"""Compose the real root config in-process, shrunk, writing into a tmp folder."""

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
# the same data folder as the real-data fixtures of tests/conftest.py
DATA_DIR = Path(os.environ.get("MEDFEW_DATA") or Path(__file__).resolve().parents[3] / "shared" / "data")


def compose_config(out: Path, overrides: list[str]) -> DictConfig:
    """configs/config.yaml with ``overrides``, output in ``out``, W&B off; Hydra state set as in a run."""
    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[f"paths.output_dir={out}", f"paths.root_dir={out}", f"paths.data_dir={DATA_DIR}", "logger=none", *overrides],
            return_hydra_config=True,
        )
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg.hydra
    return cfg


@pytest.fixture
def root_config() -> Iterator[Callable[[Path, list[str]], DictConfig]]:
    """``compose_config``; the Hydra state it sets is cleared after the test."""
    yield compose_config
    HydraConfig.instance().cfg = None

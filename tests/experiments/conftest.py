"""Compose configs/config.yaml with an experiment preset, in process, writing into a tmp folder."""

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"
# the same data folder as the real-data fixtures of tests/conftest.py
DATA_DIR = Path(os.environ.get("MEDFEW_DATA") or ROOT.parent / "shared" / "data")


def compose_run(out: Path, overrides: list[str]) -> DictConfig:
    """The root config with ``overrides``, output in ``out``, W&B off unless overridden; Hydra state set as in a run."""
    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[
                f"paths.output_dir={out}",
                f"paths.root_dir={out}",
                f"paths.data_dir={DATA_DIR}",
                "logger=none",
                *overrides,
            ],
            return_hydra_config=True,
        )
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg.hydra
    return cfg


@pytest.fixture
def run_config() -> Iterator[Callable[[Path, list[str]], DictConfig]]:
    """``compose_run``; the Hydra state it sets is cleared after the test."""
    yield compose_run
    HydraConfig.instance().cfg = None

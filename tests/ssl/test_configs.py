"""Every configs/ssl/<method>.yaml composes into a partial of medfew.ssl.pretrain."""

import functools
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from medfew.ssl import METHODS, pretrain

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
NAMES = sorted(p.stem for p in (CONFIGS / "ssl").glob("*.yaml") if not p.stem.startswith("_"))


def test_there_is_one_config_per_method():
    assert NAMES == sorted(METHODS)


@pytest.mark.parametrize("name", NAMES)
def test_config_instantiates_a_pretrain_partial(name, tiny_backbone):
    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        cfg = compose("pretrain", overrides=[f"ssl={name}", "backbone=conv4", "data.image_size=32"])
    call = instantiate(cfg.ssl)
    assert isinstance(call, functools.partial) and call.func is pretrain
    assert set(call.keywords) >= {"method", "backbone", "augment", "steps", "epochs", "batch_size", "trainer"}
    assert isinstance(call.keywords["method"](tiny_backbone()), METHODS[name])
    assert call.keywords["backbone"]().spec["name"] == "conv4"
    assert isinstance(call.keywords["trainer"], dict) and "max_epochs" in call.keywords["trainer"]

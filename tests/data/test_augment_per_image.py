"""Augmentation draws independent random parameters for every image of a batch."""

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import Tensor
from torchvision.transforms import v2

from medfew.data import medical_augment

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def identical_batch(n: int = 8, size: int = 32) -> Tensor:
    """(n, 1, size, size) copies of one asymmetric image in [0, 1]."""
    ramp = torch.linspace(0, 1, size)
    image = ramp[:, None] * ramp[None, :] ** 2
    image[4:10, 20:28] = 1.0
    return image.expand(n, 1, size, size).clone()


def all_differ(batch: Tensor) -> bool:
    """True when no two images of the batch are (nearly) equal."""
    flat = batch.flatten(1)
    distance = torch.cdist(flat, flat) + torch.eye(len(flat)) * 1e9
    return bool(distance.min() > 1e-3)


def test_medical_augment_differs_per_image() -> None:
    torch.manual_seed(0)
    out = medical_augment(32)(identical_batch())
    assert out.shape == (8, 1, 32, 32) and 0 <= out.min() and out.max() <= 1
    assert all_differ(out)


def test_the_check_catches_one_draw_per_batch() -> None:
    """torchvision.transforms.v2 on a batch tensor draws one crop and angle for all images."""
    torch.manual_seed(0)
    batch_transform = v2.Compose([v2.RandomResizedCrop(32, scale=(0.6, 1.0)), v2.RandomRotation(15)])
    out = batch_transform(identical_batch())
    assert not torch.equal(out[0], identical_batch()[0])  # it did transform ...
    assert not all_differ(out)  # ... but every image the same way


@pytest.mark.parametrize("preset", sorted(p.stem for p in (CONFIGS / "augment").glob("*.yaml")))
def test_presets_compose_and_run(preset: str) -> None:
    with initialize_config_dir(str(CONFIGS / "augment"), version_base="1.3"):
        cfg = compose(preset, overrides=["+data.image_size=32"])
    settings = OmegaConf.to_container(cfg, resolve=True)
    settings.pop("data")
    torch.manual_seed(0)
    out = instantiate(settings)(identical_batch(4).expand(4, 3, 32, 32))
    assert out.shape == (4, 3, 32, 32) and 0 <= out.min() and out.max() <= 1

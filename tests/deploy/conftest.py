"""Shared by the deploy tests: tiny labelled images and learners fitted on them with smoke budgets."""

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from PIL import Image

from medfew.config import apply_knobs
from medfew.data import ImageData
from medfew.deploy.fit import Fitted, fit_learner, save_fitted
from medfew.learners.registry import CONFIG_DIR, with_learner

SMOKE = {
    "steps": 2, "meta_train_steps": 0, "meta_training.steps_per_epoch": 1, "meta_training.val_episodes": 1,
    "meta_training.n_query": 2, "inner_steps": 1, "eval_inner_steps": 1, "pretrain.epochs": 1, "pretrain.batch_size": 8,
}  # fmt: skip


def tiny_images(channels: int = 1, size: int = 28) -> ImageData:
    """3 classes x 8 random images, class 1 darker and class 2 brighter."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(40, 200, (24, channels, size, size), dtype=torch.uint8, generator=generator)
    labels = torch.arange(3).repeat_interleave(8)
    images[labels == 1] //= 2
    images[labels == 2] += 50
    return ImageData(images, labels, ("cyst", "mass", "normal"), name="tiny")


def learner_config(name: str, channels: int = 1, size: int = 28, **knobs):
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        root = compose("config", overrides=[
            "data=bloodcells", f"data.image_size={size}", f"data.channels={channels}", "backbone=conv4",
            "backbone.model_kwargs.hidden=8", "trainer=cpu", "+trainer.limit_train_batches=1", "trainer.enable_progress_bar=false",
        ])  # fmt: skip
        cfg = with_learner(root, name)
    apply_knobs(cfg.learner, SMOKE | knobs)
    return cfg.learner


def fit_and_save(name: str, folder: Path, data: ImageData | None = None, **knobs) -> Fitted:
    """Learner ``name`` fitted on ``data`` (default: tiny grey images) and saved as a bundle in ``folder / "model"``."""
    data = data or tiny_images()
    node = learner_config(name, data.images.shape[1], data.images.shape[-1], **knobs)
    fitted = fit_learner(node, name, data, "all", 0, folder / "work", torch.device("cpu"))
    save_fitted(fitted, folder / "model", name, OmegaConf.to_container(node, resolve=True))
    return fitted


def save_png(image: torch.Tensor, path: Path) -> None:
    """A (C, H, W) uint8 image as a PNG (grey or RGB)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    array = image.permute(1, 2, 0).numpy()
    Image.fromarray(array[..., 0] if array.shape[-1] == 1 else np.ascontiguousarray(array)).save(path)


@pytest.fixture
def tiny() -> ImageData:
    return tiny_images()


@pytest.fixture(scope="session")
def deploy_helpers():
    """(fit_and_save, tiny_images, save_png): the helpers above, for the deploy tests."""
    return fit_and_save, tiny_images, save_png

"""Every learner of this package through its config: the probability contract, and accuracy
above chance on real novel-class blood-cell episodes for the feature-based ones."""

from functools import partial

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from medfew.data import EpisodeSet, preprocess
from medfew.learners.base import Learner
from medfew.learners.finetune import FineTune
from medfew.learners.registry import CONFIG_DIR, with_learner
from medfew.models import create_backbone

FEATURE_LEARNERS = ["prototype", "prototype_pixels", "logreg", "logreg_pixels", "knn", "rfs"]
TRAINED_LEARNERS = ["finetune", "linear_probe", "baseline_pp", "pmf"]  # (prepare's stages are not run here)
NOVEL = ["lymphocyte", "monocyte", "neutrophil"]


@pytest.fixture(scope="module")
def episodes(bloodcells) -> EpisodeSet:
    """Four 3-way 5-shot 10-query episodes of the novel blood-cell classes at 32 x 32."""
    novel = preprocess(bloodcells.select_classes(NOVEL), image_size=32)
    return EpisodeSet.draw(novel, n_way=3, n_shot=5, n_query=10, n_episodes=4, seed=0)


def build(name: str, **overrides) -> Learner:
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        root = compose("config", overrides=["data=bloodcells", "data.image_size=32", "backbone=conv4"])
        cfg = with_learner(root, name, overrides)
    torch.manual_seed(0)
    return instantiate(cfg.learner)


@pytest.mark.parametrize("name", FEATURE_LEARNERS + TRAINED_LEARNERS)
def test_probability_contract(name, episodes):
    learner = build(name, **({"steps": 3} if name in TRAINED_LEARNERS else {}))
    episode = episodes[0]
    probs = learner(episode)
    assert probs.shape == (30, 3)
    assert torch.isfinite(probs).all() and (probs >= 0).all()
    assert torch.allclose(probs.sum(dim=1), torch.ones(30), atol=1e-5)


@pytest.mark.parametrize("name", FEATURE_LEARNERS)
def test_feature_learners_beat_chance(name, episodes):
    learner = build(name)
    accuracy = [(learner(ep).argmax(dim=1) == ep.query_labels).float().mean().item() for ep in episodes]
    assert sum(accuracy) / len(accuracy) > 0.5  # chance is 1/3


def test_finetune_learns_a_separable_task():
    """Dark versus bright 1 x 16 x 16 images: after 30 steps every query image is right."""
    generator = torch.Generator().manual_seed(0)
    images = torch.cat([torch.rand(8, 1, 16, 16, generator=generator) * 0.3, 0.7 + torch.rand(8, 1, 16, 16, generator=generator) * 0.3])
    labels = torch.arange(2).repeat_interleave(8)
    torch.manual_seed(0)
    learner = FineTune(partial(create_backbone, "conv4", 1, 16, model_kwargs={"hidden": 8}), steps=30, lr=0.01)
    state = learner.adapt(images[::2], labels[::2], val=(images[1::2], labels[1::2]))
    assert (learner.predict(state, images[1::2]).argmax(dim=1) == labels[1::2]).all()
    assert learner.backbone.net.features[0][0].weight.grad is None  # the learner's own backbone is untouched

"""Transfer learners from a locally saved timm state dict (no network): the weights and ImageNet's
normalisation reach the backbone, and the learners score an episode."""

from pathlib import Path

import pytest
import timm
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from medfew.learners.registry import CONFIG_DIR, with_learner

SUPPORT_LABELS = torch.tensor([0, 0, 1, 1, 2, 2])


@pytest.fixture(scope="module")
def timm_weights(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A timm ResNet-18 state dict (classifier included, as timm's hub files are) saved with torch.save."""
    torch.manual_seed(0)
    state = timm.create_model("resnet18", pretrained=False).state_dict()
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save(state, path)
    return path, state


def build(name: str, path: Path, **overrides):
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        root = compose("config", overrides=["data=bloodcells", "data.image_size=32"])  # RGB, 32 px
        cfg = with_learner(root, name, {"backbone": {"pretrained": str(path)}, **overrides})
    assert cfg.learner.backbone.name == "resnet18"
    return instantiate(cfg.learner)


@pytest.mark.parametrize("name, overrides", [("transfer_finetune", {"steps": 1, "precision": "32-true"}), ("transfer_logreg", {})])
def test_transfer_learner_starts_from_the_saved_weights(name, overrides, timm_weights):
    path, state = timm_weights
    learner = build(name, path, **overrides)
    loaded = learner.backbone.net.state_dict()
    assert {k for k in state if not k.startswith("fc.")} == set(loaded)  # the ImageNet classifier is dropped
    for key, value in loaded.items():
        assert torch.equal(value, state[key]), key
    torch.testing.assert_close(learner.backbone.mean.flatten(), torch.tensor([0.485, 0.456, 0.406]))
    torch.testing.assert_close(learner.backbone.std.flatten(), torch.tensor([0.229, 0.224, 0.225]))
    torch.manual_seed(0)
    support, query = torch.rand(6, 3, 32, 32), torch.rand(4, 3, 32, 32)
    probs = learner.predict(learner.adapt(support, SUPPORT_LABELS), query)
    assert probs.shape == (4, 3)
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(4))

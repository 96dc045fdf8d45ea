"""configs/metatrain.yaml + experiments/metatrain.py: every learner config builds; one tiny run;
the cross-domain experiment is expressible by config alone."""

import importlib.util
import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import open_dict

from medfew.fewshot import EpisodicLearner

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("metatrain_entry", ROOT / "experiments" / "metatrain.py")
metatrain_entry = importlib.util.module_from_spec(spec)
spec.loader.exec_module(metatrain_entry)


def compose_metatrain(*overrides: str):
    """The composed root config, with Hydra's runtime set as ``@hydra.main`` would."""
    with initialize_config_dir(str(ROOT / "configs"), version_base="1.3"):
        cfg = compose(
            "metatrain",
            overrides=["logger=none", "trainer=cpu", "trainer.enable_progress_bar=false", *overrides],
            return_hydra_config=True,
        )
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg.hydra  # as in an @hydra.main app, whose cfg holds no hydra node
    return cfg


@pytest.mark.parametrize(
    "name, class_name, first_order",
    [
        ("protonet", "ProtoNet", None),
        ("maml", "MAML", False),
        ("fomaml", "MAML", True),
        ("anil", "ANIL", False),
        ("metasgd", "MetaSGD", False),
    ],
)
def test_every_learner_config_builds_its_learner(name, class_name, first_order):
    learner = instantiate(compose_metatrain(f"learner={name}").learner)
    assert isinstance(learner, EpisodicLearner) and type(learner).__name__ == class_name
    assert learner.meta_train_steps % learner.meta_training.steps_per_epoch == 0
    assert learner.meta_training.trainer["accelerator"] == "cpu"  # ${trainer} reaches the meta-trainer
    if first_order is not None:
        assert learner.adaptive.first_order == first_order


def test_tiny_metatrain_run_reports_novel_accuracy(bloodcells, tmp_path):
    cfg = compose_metatrain(
        "learner=protonet", "data.image_size=32", "backbone.model_kwargs.hidden=8", f"paths.output_dir={tmp_path}",
        "learner.meta_train_steps=2", "learner.meta_training.steps_per_epoch=1", "learner.meta_training.val_episodes=2",
        "test.shots=[1]", "test.n_episodes=4", "test.n_query=3",
        "data.class_split.base=[basophil,erythroblast,platelet]", "data.class_split.val=[eosinophil,ig]",
    )
    results = metatrain_entry.metatrain(cfg)
    assert results["novel"] == ["lymphocyte", "monocyte", "neutrophil"]
    assert 0 <= results["1-shot"]["acc"] <= 1 and results["1-shot"]["episodes"] == 4
    assert json.loads((tmp_path / "results.json").read_text()) == results
    assert (tmp_path / "learner" / "checkpoints" / "best.ckpt").exists()


def test_cross_domain_split_is_config_only(bloodcells, brain_mri, pneumoniamnist):
    cfg = compose_metatrain("experiment=metatrain_crossdomain")
    parts = metatrain_entry.splits(cfg)
    base = {"basophil", "eosinophil", "erythroblast", "ig", "lymphocyte", "glioma", "meningioma", "notumor"}
    assert set(parts["base"].class_names) == base
    assert parts["val"].class_names == ("monocyte", "neutrophil", "platelet", "pituitary")
    assert parts["novel"].n_classes == 2  # chest X-ray: normal vs pneumonia
    for part in parts.values():
        assert tuple(part.images.shape[1:]) == (1, 28, 28)

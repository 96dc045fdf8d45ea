"""configs/metatrain.yaml + `medfew metatrain`: every learner config builds; one tiny run scores through the
comparison (results.csv, summary); the cross-domain experiment is expressible by config alone."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import open_dict

from medfew import apps
from medfew.evaluation.folds import load_data
from medfew.fewshot import EpisodicLearner

ROOT = Path(__file__).resolve().parents[2]


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


def test_tiny_metatrain_run_scores_through_the_comparison(bloodcells, compose_root, tmp_path):
    cfg = compose_root("metatrain", tmp_path, [
        "learner=protonet", "data.image_size=32", "backbone.model_kwargs.hidden=8", "learner.meta_train_steps=2",
        "learner.meta_training.steps_per_epoch=1", "learner.meta_training.val_episodes=2", "protocol.shots=[1]",
        "episodes=4", "protocol.n_query=3", "data.class_split.base=[basophil,erythroblast,platelet]",
        "data.class_split.val=[eosinophil,ig]",
    ])  # fmt: skip
    summary = apps.metatrain(cfg)
    assert summary["learners"] == ["protonet"] and summary["header"]["novel"] == ["lymphocyte", "monocyte", "neutrophil"]
    cell = summary["results"]["acc"]["protonet"]["shots=1"]
    assert cell["n"] == 4 and 0 <= cell["low"] <= cell["mean"] <= cell["high"] <= 1
    assert len((tmp_path / "results.csv").read_text().splitlines()) == 1 + 4  # header + one row per episode
    assert len(list((tmp_path / "work").glob("protonet-*/all/seed0/checkpoints/best.ckpt"))) == 1
    assert "learner" not in cfg and cfg.learner_overrides.protonet.meta_train_steps == 2  # learner.* became its settings


def test_cross_domain_split_is_config_only(bloodcells, brain_mri, pneumoniamnist, compose_root, tmp_path):
    cfg = compose_root("metatrain", tmp_path, ["experiment=metatrain_crossdomain"])
    protocol = instantiate(cfg.protocol, _partial_=True)(data=load_data(cfg.data))
    classes = protocol.classes()
    assert set(classes["base"]) == {"basophil", "eosinophil", "erythroblast", "ig", "lymphocyte", "glioma", "meningioma", "notumor"}
    assert classes["val"] == ["monocyte", "neutrophil", "platelet", "pituitary"]
    assert classes["novel"] == ["normal", "pneumonia"]  # chest X-ray
    for part in protocol.parts.values():
        assert tuple(part.images.shape[1:]) == (1, 28, 28)

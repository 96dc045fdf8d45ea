"""`medfew fit` and `medfew predict` through their root configs (configs/fit.yaml, configs/predict.yaml)."""

import csv
import json

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from medfew import apps
from medfew.config import path_name
from medfew.learners.registry import CONFIG_DIR


def compose_predict(out, *overrides: str):
    """configs/predict.yaml as ``@hydra.main`` sees it, writing to ``out``."""
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("predict", overrides=[f"paths.output_dir={out}", *overrides], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg.hydra
    return cfg


def test_fit_then_predict_through_the_configs(breastmnist, compose_root, tmp_path, deploy_helpers):
    save_png = deploy_helpers[2]
    cfg = compose_root("fit", tmp_path / "fit", ["learner=prototype_pixels", "debug=smoke", "images=train"])
    assert cfg.data.image_size == 28 and cfg.learner.center  # the smoke budget and the learner's own config
    folder = apps.fit(cfg)
    info = json.loads((folder / "bundle.json").read_text())
    assert folder == tmp_path / "fit" / "model" and info["learner"] == "prototype_pixels"
    assert info["data"] | {"fingerprint": None} == {
        "name": "breastmnist", "part": "train", "images": 546, "class_counts": {"malignant": 147, "normal, benign": 399},
        "fingerprint": None, "smoke": True,
    }  # fmt: skip
    test = breastmnist.select_split("test")
    for i in range(4):
        save_png(test.images[i], tmp_path / "scans" / f"{i}.png")
    record = apps.predict(compose_predict(tmp_path / "predict", f"model={folder}", f"input={tmp_path / 'scans'}"))
    with open(tmp_path / "predict" / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["file"] for row in rows] == [f"{i}.png" for i in range(4)] and record["files"] == 4
    assert set(rows[0]) == {"file", "predicted", "p_malignant", "p_normal, benign", "note"}


def test_fit_refuses_a_part_the_data_lacks(tiny, tmp_path):
    from medfew.deploy.fit import training_images

    with pytest.raises(ValueError, match=r"images=train: tiny has no train part \(splits: none\); use images=all"):
        training_images(tiny, "train")
    with pytest.raises(ValueError, match=r"images='some': choose one of \('all', 'train'\)"):
        training_images(tiny, "some")


def test_a_predict_run_is_named_after_its_input_and_its_model():
    assert path_name("/data/scans/") == "scans" and path_name("outputs/fit/breastmnist-finetune/model") == "breastmnist-finetune"

"""Every experiment preset composes, names only existing learners, and runs at debug=smoke."""

import csv
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from medfew.config import apply_knobs
from medfew.evaluation import compare
from medfew.learners.registry import with_learner

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
PRESETS = sorted(
    p.stem for p in (CONFIGS / "experiment").glob("*.yaml") if p.stem != "metatrain_crossdomain"
)  # that one is metatrain.yaml's


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_the_presets_are_the_documented_ones():
    assert set(PRESETS) >= {
        "breastmnist_label_efficiency", "pneumoniamnist_label_efficiency", "bloodcells_fewshot", "crossdomain", "label_efficiency",
        "fewshot",
    }  # fmt: skip


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_and_its_learners_resolve(preset: str, compose_root, tmp_path: Path):
    for smoke in ([], ["debug=smoke"]):
        cfg = compose_root("config", tmp_path, [f"experiment={preset}", *smoke])
        generic = {"label_efficiency": "breastmnist_label_efficiency", "fewshot": "breastmnist_fewshot"}  # any data; default breastmnist
        assert cfg.task_name == generic.get(preset, preset)
        for name in cfg.learners:
            learner = with_learner(cfg, name, cfg.learner_overrides.get(name)).learner
            apply_knobs(learner, cfg.knobs)
            OmegaConf.resolve(learner)  # every interpolation of every learner resolves
            if smoke and "steps" in learner:
                assert learner.steps == 2, name


def test_published_references_are_recorded(compose_root, tmp_path: Path):
    breast = compose_root("config", tmp_path, ["experiment=breastmnist_label_efficiency"]).published
    pneumonia = compose_root("config", tmp_path, ["experiment=pneumoniamnist_label_efficiency"]).published
    assert (breast.acc, breast.auroc, pneumonia.acc, pneumonia.auroc) == (
        0.863,
        0.901,
        0.854,
        0.944,
    )


def test_label_efficiency_preset_runs_at_smoke_settings(breastmnist, compose_root, tmp_path: Path):
    cfg = compose_root("config", tmp_path, ["experiment=breastmnist_label_efficiency", "debug=smoke"])
    summary = compare(cfg)
    rows = read_rows(tmp_path / "results.csv")
    assert len(rows) == len(cfg.learners) * 3  # one test set per fraction, one seed
    assert summary["learners"] == list(cfg.learners) and summary["identical_splits"]
    assert {s["setting"] for s in summary["settings"]} == {
        "fraction=0.01",
        "fraction=0.1",
        "fraction=1",
    }
    # 4 SSL learners x 3 fractions pretrain on the same pool (the train split): one run per method
    assert len(list((tmp_path / "cache" / "ssl").glob("*/backbone.safetensors"))) == 2  # SimCLR, Barlow Twins


@pytest.mark.slow
def test_pneumoniamnist_preset_runs_at_smoke_settings(pneumoniamnist, compose_root, tmp_path: Path):
    cfg = compose_root("config", tmp_path, ["experiment=pneumoniamnist_label_efficiency", "debug=smoke"])
    summary = compare(cfg)
    assert summary["learners"] == list(cfg.learners) and summary["identical_splits"]
    assert [s["setting"] for s in summary["settings"]] == [
        "fraction=0.01",
        "fraction=0.1",
        "fraction=1",
    ]

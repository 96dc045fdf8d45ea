"""Bad input the other test folders do not reach: unknown names in configs list the valid ones,
wrong episode shapes reach the meta-trainer's user as a named error, bad run settings stop before
any scoring, a second writer and a full disk stop with a clear message (and a rerun resumes), and an
unreachable W&B server falls back to an offline run (the rest of the catalogue: tests/data, tests/models)."""

import json
import os
import subprocess
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import MissingConfigException

from medfew import apps
from medfew.evaluation import compare
from medfew.evaluation.results import ResultsFile
from medfew.files import RunLock
from medfew.fewshot import MetaTraining, ProtoNet
from medfew.learners import PrepareContext
from medfew.learners.registry import learner_config

ROOT = Path(__file__).resolve().parents[2]


def test_unknown_comparison_learner_lists_the_valid_ones():
    with pytest.raises(KeyError, match=r"unknown learner 'protonett' \(did you mean 'protonet'\?\): no learner/protonett.yaml .*; valid learners are anil, .*finetune, .*protonet, prototype,"):
        learner_config("protonett")


@pytest.mark.parametrize(
    "root, override, listed",
    [("pretrain", "ssl=simclrr", "simclr"), ("metatrain", "learner=mamll", "maml"), ("config", "backbone=resnet_18", "resnet18")],
)
def test_unknown_config_names_list_the_valid_ones(root, override, listed):
    group, wrong = override.split("=")
    with initialize_config_dir(str(ROOT / "configs"), version_base="1.3"):
        with pytest.raises(MissingConfigException, match=rf"(?s)Could not find '{group}/{wrong}'\s+Available options in '{group}':.*\t{listed}\n"):
            compose(root, overrides=[override])


def test_meta_training_episodes_larger_than_the_data_are_named(pbc_split, tiny_conv4, tmp_path):
    too_wide = ProtoNet(tiny_conv4, meta_train_steps=1, meta_training=MetaTraining(n_way=4, steps_per_epoch=1, trainer={"accelerator": "cpu"}))
    with pytest.raises(ValueError, match="n_way = 4 but .* has 3 classes: basophil, erythroblast, platelet"):
        too_wide.prepare(PrepareContext(tmp_path / "a", seed=0, base=pbc_split["base"]))
    too_deep = ProtoNet(tiny_conv4, meta_train_steps=1, meta_training=MetaTraining(n_shot=200, n_query=100, steps_per_epoch=1, trainer={"accelerator": "cpu"}))
    with pytest.raises(ValueError, match=r"class 'basophil' has \d+ images; n_shot \+ n_query = 300"):
        too_deep.prepare(PrepareContext(tmp_path / "b", seed=0, base=pbc_split["base"]))


WANDB_OFFLINE_FALLBACK = """
import json, sys, warnings
from medfew.tracking import start_wandb
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    run = start_wandb("online", run_dir=sys.argv[1], init_timeout=2)
print(json.dumps({"mode": run.settings.mode, "warnings": [str(w.message) for w in caught if "W&B" in str(w.message)]}))
run.finish()
"""


def test_unreachable_wandb_server_falls_back_to_offline(scripts, tmp_path):
    # a closed local port stands for a server out of reach; a dummy key gets past the login check
    env = os.environ | {"WANDB_BASE_URL": "http://127.0.0.1:9", "WANDB_API_KEY": "x" * 40, "WANDB_MODE": "", "WANDB_SILENT": "true"}
    done = subprocess.run([scripts.python, "-c", WANDB_OFFLINE_FALLBACK, str(tmp_path)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["mode"] == "offline"
    assert result["warnings"] and result["warnings"][0].startswith("W&B online run failed (")
    assert result["warnings"][0].endswith(f"logging offline to {tmp_path}/wandb")
    assert list((tmp_path / "wandb").glob("offline-run-*"))


@pytest.mark.parametrize(
    "overrides, error, message",
    [
        (["data.image_size=8"], ValueError, r"backbone 'conv4' cannot take 1 x 8 x 8 images .*the smallest size it takes is 16: set data.image_size=16"),
        (["data.image_size=0"], ValueError, r"data.image_size must be a positive number of pixels \(or null: keep the source's\), got 0"),
        (["data=bloodcells", "protocol=label_budget"], ValueError, r"pbc_bloodcells_64.npz has no official split.*data.split=stratified.*data.split=kfold"),
        (["data=bloodcells", "protocol=episodes", "data.split=kfold"], ValueError, r"data.split=kfold cuts images .* the episodes protocol splits by class"),
        (["data=bloodcells", "protocol=episodes", "episodes=0"], ValueError, r"the episodes protocol needs n_episodes >= 1 \(protocol.n_episodes / episodes\), got 0"),
        (["seeds=[0,1,0]"], ValueError, r"seeds = \[0, 1, 0\] lists seed 0 more than once; give each seed once"),
        (["learners=[ssl_prototype]", "+learner_overrides.ssl_prototype.pretrain.lr=-0.1"], ValueError, r"learner_overrides.ssl_prototype.pretrain.lr must be > 0, got -0.1"),
        (["learners=[finetune]", "+learner_overrides.finetune.weight_decay=-1"], ValueError, r"learner_overrides.finetune.weight_decay must be >= 0, got -1"),
    ],
)
def test_bad_run_settings_stop_before_any_scoring(overrides, error, message, bloodcells, breastmnist, compose_root, tmp_path):
    with pytest.raises(error, match=message):
        compare(compose_root("config", tmp_path, ["learners=[prototype_pixels]", *overrides]))
    assert not (tmp_path / "results.csv").exists()


@pytest.mark.parametrize(
    "root, overrides, message",
    [
        ("pretrain", ["ssl.lr=-0.1"], r"ssl.lr must be > 0, got -0.1"),
        ("pretrain", ["ssl.warmup_steps=-5"], r"ssl.warmup_steps must be >= 0, got -5"),
        ("pretrain", ["ssl=byol", "ssl.method.momentum=1.5"], r"ssl.method.momentum must be in \[0, 1\], got 1.5"),
        ("metatrain", ["learner=maml", "learner.meta_training.lr=0"], r"learner.meta_training.lr must be > 0, got 0"),
    ],
)
def test_bad_training_settings_are_named_before_any_training(root, overrides, message, bloodcells, compose_root, tmp_path):
    app = {"pretrain": apps.pretrain, "metatrain": apps.metatrain}[root]
    with pytest.raises(ValueError, match=message):
        app(compose_root(root, tmp_path, ["debug=smoke", *overrides]))
    assert not list(tmp_path.rglob("*.ckpt")) and not list(tmp_path.rglob("results.csv"))


def test_a_second_run_in_the_same_folder_stops_at_once(breastmnist, compose_root, tmp_path):
    with RunLock(tmp_path), pytest.raises(RuntimeError, match=f"another run .* is writing to {tmp_path}"):
        compare(compose_root("config", tmp_path, ["learners=[prototype_pixels]"]))


def test_a_failed_write_stops_with_the_path_and_a_rerun_resumes(breastmnist, compose_root, tmp_path, monkeypatch, full_disk):
    overrides = ["learners=[prototype_pixels,logreg_pixels]", "seeds=[0]", "report.reference=logreg_pixels"]
    with pytest.raises(OSError, match=f"cannot write {tmp_path / 'results.csv'}: No space left on device"):
        compare(compose_root("config", tmp_path, overrides))
    saved = ResultsFile(tmp_path / "results.csv").read()
    assert {r["learner"] for r in saved} == {"prototype_pixels"} and len(full_disk) == 3  # one save, a failure, one retry
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))  # no debris
    monkeypatch.undo()
    compare(compose_root("config", tmp_path, overrides))
    rows = ResultsFile(tmp_path / "results.csv").read()
    assert rows[: len(saved)] == saved and {r["learner"] for r in rows} == {"prototype_pixels", "logreg_pixels"}

"""Bad input the other test folders do not reach: unknown names in configs list the valid ones,
wrong episode shapes reach the meta-trainer's user as a named error, and an unreachable W&B
server falls back to an offline run (the rest of the catalogue: tests/data, tests/models)."""

import json
import os
import subprocess
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import MissingConfigException

from medfew.fewshot import MetaTraining, ProtoNet
from medfew.learners import PrepareContext
from medfew.learners.registry import learner_config

ROOT = Path(__file__).resolve().parents[2]


def test_unknown_comparison_learner_lists_the_valid_ones():
    with pytest.raises(KeyError, match=r"unknown learner 'protonett': no learner/protonett.yaml .*; valid learners are anil, finetune, .*protonet, prototype,"):
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

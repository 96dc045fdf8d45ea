"""Meta-training under Lightning DDP (``trainer=ddp``): two CPU processes on gloo give the same
kind of checkpoint as one process, and the learner reloads from it."""

import json

import pytest
import torch

from medfew.fewshot import ProtoNet
from medfew.fewshot.meta_training import MetaTrainingModule

TINY = [
    "learner=protonet", "data.image_size=32", "backbone.model_kwargs.hidden=8", "learner.meta_train_steps=2",
    "learner.meta_training.steps_per_epoch=1", "learner.meta_training.meta_batch_size=2",
    "learner.meta_training.val_episodes=2", "learner.meta_training.n_query=2", "test.shots=[1]", "test.n_episodes=4",
    "test.n_query=3", "logger=none", "trainer=ddp", "trainer.accelerator=cpu", "trainer.enable_progress_bar=false",
]  # fmt: skip


@pytest.mark.slow
def test_two_process_ddp_meta_training_writes_a_loadable_checkpoint(scripts, data_env, pbc_split, tiny_conv4, tmp_path):
    done = scripts.run_ok([scripts.python, "experiments/metatrain.py", *TINY, f"paths.log_dir={tmp_path}"], data_env)
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in done.stdout + done.stderr
    assert done.stdout.count("1-shot novel accuracy") == 1  # rank 0 alone tests and writes results.json
    run_dir = tmp_path / "metatrain" / "bloodcells-protonet-seed0"
    last = torch.load(run_dir / "learner" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["epoch"] == 1 and last["global_step"] == 2  # one optimiser step per epoch, shared by both processes
    module = MetaTrainingModule(ProtoNet(tiny_conv4), pbc_split["base"], None, ProtoNet(tiny_conv4).meta_training)
    module.load_state_dict(last["state_dict"])  # strict: the same keys and shapes as a one-process run
    results = json.loads((run_dir / "results.json").read_text())
    assert results["1-shot"]["episodes"] == 4 and 0 <= results["1-shot"]["acc"] <= 1

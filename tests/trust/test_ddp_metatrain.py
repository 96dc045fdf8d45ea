"""Meta-training under Lightning DDP (``trainer=ddp``): two CPU processes on gloo give the same
kind of checkpoint as one process, and the learner reloads from it."""

import pytest
import torch

from medfew.evaluation.results import ResultsFile
from medfew.fewshot import ProtoNet
from medfew.fewshot.meta_training import MetaTrainingModule

TINY = [
    "learner=protonet", "data.image_size=32", "backbone.model_kwargs.hidden=8", "learner.meta_train_steps=2",
    "learner.meta_training.steps_per_epoch=1", "learner.meta_training.meta_batch_size=2",
    "learner.meta_training.val_episodes=2", "learner.meta_training.n_query=2", "protocol.shots=[1]", "episodes=4",
    "protocol.n_query=3", "logger=none", "trainer=ddp", "trainer.accelerator=cpu", "trainer.enable_progress_bar=false",
]  # fmt: skip


@pytest.mark.slow
def test_two_process_ddp_meta_training_writes_a_loadable_checkpoint(scripts, data_env, pbc_split, tiny_conv4, tmp_path):
    done = scripts.run_ok([scripts.python, "experiments/metatrain.py", *TINY, f"paths.log_dir={tmp_path}"], data_env)
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in done.stdout + done.stderr
    assert done.stdout.count("| protonet |") == 1  # rank 0 alone scores, writes and prints the table
    run_dir = tmp_path / "metatrain" / "bloodcells-protonet"
    last_path = next(run_dir.glob("work/protonet-*/all/seed0/checkpoints/last.ckpt"))
    last = torch.load(last_path, map_location="cpu", weights_only=True)
    assert last["epoch"] == 1 and last["global_step"] == 2  # one optimiser step per epoch, shared by both processes
    module = MetaTrainingModule(ProtoNet(tiny_conv4), pbc_split["base"], None, ProtoNet(tiny_conv4).meta_training)
    module.load_state_dict(last["state_dict"])  # strict: the same keys and shapes as a one-process run
    rows = ResultsFile(run_dir / "results.csv").read()
    assert sorted(int(r["episode"]) for r in rows) == [0, 1, 2, 3]  # one writer: no doubled rows

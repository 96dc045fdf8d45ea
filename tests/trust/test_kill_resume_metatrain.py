"""SIGKILL a meta-training run (experiments/metatrain.py) mid-way; the same command resumes from
last.ckpt and ends with exactly the weights, best checkpoint and novel-class scores of an
uninterrupted run."""

from pathlib import Path

import pytest
import torch

from medfew import apps
from medfew.evaluation.results import ResultsFile
from medfew.fewshot import MetaTraining, ProtoNet
from medfew.learners import PrepareContext

TINY = [
    "learner=protonet", "data.image_size=32", "backbone.model_kwargs.hidden=8", "learner.meta_train_steps=8",
    "learner.meta_training.steps_per_epoch=1", "learner.meta_training.val_episodes=2", "learner.meta_training.n_query=2",
    "protocol.shots=[1]", "episodes=4", "protocol.n_query=3", "logger=none", "trainer=cpu",
    "trainer.enable_progress_bar=false",
    "data.class_split.base=[basophil,erythroblast,platelet]", "data.class_split.val=[eosinophil,ig]",  # best.ckpt by val
]  # fmt: skip
RUN = "metatrain/bloodcells-protonet"


def checkpoints(run_dir: Path) -> Path:
    """The meta-trained learner's checkpoint folder inside a run folder (work/<learner>-<hash>/<fold>/<seed>)."""
    return run_dir / "work" / "protonet-*" / "all" / "seed0" / "checkpoints"


def checkpoint(run_dir: Path, name: str) -> Path | None:
    return next(run_dir.glob(str(checkpoints(run_dir).relative_to(run_dir) / name)), None)


@pytest.mark.slow
def test_killed_meta_training_resumes_to_the_uninterrupted_result(scripts, data_env, compose_root, tmp_path):
    def command(log_dir):
        return [scripts.python, "experiments/metatrain.py", *TINY, f"paths.log_dir={log_dir}"]

    run_dir = tmp_path / "killed" / RUN
    scripts.kill_when(command(tmp_path / "killed"), data_env, ready=lambda: checkpoint(run_dir, "last.ckpt") is not None)
    last = checkpoint(run_dir, "last.ckpt")
    killed_at = torch.load(last, map_location="cpu", weights_only=True)["epoch"]
    assert killed_at < 7 and not (run_dir / "results.csv").exists()

    resumed = scripts.run_ok(command(tmp_path / "killed"), data_env)
    assert "Restoring states from the checkpoint" in resumed.stdout + resumed.stderr
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == 8
    straight_dir = tmp_path / "straight"
    apps.metatrain(compose_root("metatrain", straight_dir, TINY))  # uninterrupted, in this process

    rows = [[row | {"seconds": ""} for row in ResultsFile(d / "results.csv").read()] for d in (run_dir, straight_dir)]
    assert len(rows[0]) == 4 and rows[0] == rows[1]  # the same rows (metrics, hashes) but for the time taken
    for name in ("last.ckpt", "best.ckpt"):
        a, b = (torch.load(checkpoint(d, name), map_location="cpu", weights_only=True) for d in (run_dir, straight_dir))
        assert (a["epoch"], a["global_step"]) == (b["epoch"], b["global_step"])
        for key, value in a["state_dict"].items():
            assert torch.equal(value, b["state_dict"][key]), (name, key)


def test_resumed_runs_keep_the_best_checkpoint_of_an_uninterrupted_run(pbc_split, tiny_conv4, tmp_path):
    """last.ckpt must carry the best-checkpoint state of its own epoch: else a resume re-saves the
    best model under a new name (best-v1.ckpt) and reloads a stale best.ckpt."""
    recipe = MetaTraining(
        n_way=3, n_shot=1, n_query=2, steps_per_epoch=1, val_episodes=2,
        trainer={"accelerator": "cpu", "enable_progress_bar": False, "log_every_n_steps": 1},
    )  # fmt: skip

    def run(workdir, steps: int) -> ProtoNet:
        torch.manual_seed(0)
        learner = ProtoNet(tiny_conv4, meta_train_steps=steps, meta_training=recipe)
        learner.prepare(PrepareContext(workdir, seed=0, base=pbc_split["base"], val=pbc_split["val"]))
        return learner

    run(tmp_path / "resumed", 1)  # stands for a run killed during its second epoch
    resumed, whole = run(tmp_path / "resumed", 4), run(tmp_path / "whole", 4)
    assert sorted(p.name for p in (tmp_path / "resumed" / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    best = [torch.load(d / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True) for d in (tmp_path / "resumed", tmp_path / "whole")]
    assert best[0]["epoch"] == best[1]["epoch"] > 0  # a later epoch than the one the first run ended with
    for (key, a), b in zip(resumed.state_dict().items(), whole.state_dict().values()):
        assert torch.equal(a, b), key

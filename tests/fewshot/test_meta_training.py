"""Every meta-learner meta-trains a few iterations on PBC base classes and scores novel episodes."""

import csv
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from medfew.data import EpisodeSet, medical_augment
from medfew.fewshot import ProtoNet
from medfew.fewshot.anil import ANIL
from medfew.fewshot.maml import MAML
from medfew.fewshot.metasgd import MetaSGD
from medfew.learners import PrepareContext

IMAGE_SIZE = 32  # the pbc_split fixture's

LEARNERS = {
    "protonet": lambda backbone, **kw: ProtoNet(backbone, **kw),
    "maml": lambda backbone, **kw: MAML(backbone, n_way=3, inner_steps=1, eval_inner_steps=2, **kw),
    "fomaml": lambda backbone, **kw: MAML(backbone, n_way=3, inner_steps=1, eval_inner_steps=2, first_order=True, **kw),
    "anil": lambda backbone, **kw: ANIL(backbone, n_way=3, inner_steps=1, eval_inner_steps=2, **kw),
    "metasgd": lambda backbone, **kw: MetaSGD(backbone, n_way=3, inner_steps=1, eval_inner_steps=2, **kw),
}


def logged(workdir: Path, key: str) -> list[float]:
    """Values of ``key`` in the CSV metrics of every start of a run, in order."""
    values = []
    for path in sorted((workdir / "csv").glob("version_*/metrics.csv")):
        with open(path) as f:
            values += [float(row[key]) for row in csv.DictReader(f) if row.get(key)]
    return values


@pytest.mark.parametrize("name", LEARNERS)
def test_meta_trains_then_predicts_novel_episodes(name, pbc_split, tiny_conv4, tiny_recipe, tmp_path):
    torch.manual_seed(0)
    learner = LEARNERS[name](tiny_conv4, meta_train_steps=2, meta_training=tiny_recipe)
    learner.prepare(PrepareContext(tmp_path, seed=0, base=pbc_split["base"], val=pbc_split["val"]))
    losses = logged(tmp_path, "train/loss")
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)
    assert len(logged(tmp_path, "val/acc")) == 2  # one validation per epoch
    assert {"last.ckpt", "best.ckpt"} <= {p.name for p in (tmp_path / "checkpoints").iterdir()}
    assert not learner.training
    for episode in EpisodeSet.draw(pbc_split["novel"], n_way=3, n_shot=1, n_query=4, n_episodes=2, seed=0):
        probs = learner(episode)
        assert probs.shape == (12, 3) and not probs.requires_grad
        torch.testing.assert_close(probs.sum(dim=1), torch.ones(12))


def test_resumed_meta_training_equals_an_uninterrupted_run(pbc_split, tiny_conv4, tiny_recipe, tmp_path):
    def run(workdir: Path, steps: int) -> ProtoNet:
        torch.manual_seed(0)
        learner = ProtoNet(tiny_conv4, meta_train_steps=steps, meta_training=tiny_recipe)
        learner.prepare(PrepareContext(workdir, seed=3, base=pbc_split["base"]))
        return learner

    run(tmp_path / "resumed", 2)  # stands for a run killed after its second epoch
    resumed = run(tmp_path / "resumed", 3)
    whole = run(tmp_path / "whole", 3)
    assert logged(tmp_path / "resumed", "train/loss") == logged(tmp_path / "whole", "train/loss")
    for (key, a), b in zip(resumed.state_dict().items(), whole.state_dict().values()):
        assert torch.equal(a, b), key


def test_best_checkpoint_is_the_one_restored(pbc_split, tiny_conv4, tiny_recipe, tmp_path):
    torch.manual_seed(0)
    learner = ProtoNet(tiny_conv4, meta_train_steps=3, meta_training=tiny_recipe)
    learner.prepare(PrepareContext(tmp_path, seed=0, base=pbc_split["base"], val=pbc_split["val"]))
    best = torch.load(tmp_path / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    for key, value in learner.state_dict().items():
        assert torch.equal(value, best["state_dict"][f"learner.{key}"]), key


def test_no_base_classes_is_refused(tiny_conv4, tiny_recipe, tmp_path):
    learner = ProtoNet(tiny_conv4, meta_train_steps=1, meta_training=tiny_recipe)
    with pytest.raises(ValueError, match="give PrepareContext.base or set meta_train_steps=0"):
        learner.prepare(PrepareContext(tmp_path))


def test_augmented_training_episodes_reproduce_on_resume(pbc_split, tiny_conv4, tiny_recipe, tmp_path):
    recipe = replace(tiny_recipe, augment=medical_augment(IMAGE_SIZE, rotation=180.0, vflip=0.5))

    def run(workdir: Path, steps: int) -> list[float]:
        torch.manual_seed(0)
        learner = ProtoNet(tiny_conv4, meta_train_steps=steps, meta_training=recipe)
        learner.prepare(PrepareContext(workdir, seed=0, base=pbc_split["base"]))
        return logged(workdir, "train/loss")

    run(tmp_path / "resumed", 1)
    resumed = run(tmp_path / "resumed", 2)
    whole = run(tmp_path / "whole", 2)
    assert len(whole) == 2 and all(math.isfinite(x) for x in whole)
    assert resumed == whole  # EpochSeed reseeds the augmentation's draws too


def test_meta_training_precision_replaces_the_trainers(pbc_split, tiny_conv4, tiny_recipe, tmp_path, monkeypatch):
    """Squared distances and inner-loop gradients need float32: a bf16 trainer setting does not reach meta-training."""
    from medfew.fewshot import meta_training

    seen = {}
    monkeypatch.setattr(meta_training, "fit", lambda trainer, module: seen.setdefault("precision", trainer.precision))
    recipe = replace(tiny_recipe, trainer={**tiny_recipe.trainer, "precision": "bf16-mixed"})
    ProtoNet(tiny_conv4, meta_train_steps=1, meta_training=recipe).prepare(
        PrepareContext(tmp_path, seed=0, base=pbc_split["base"])
    )
    assert seen["precision"] == "32-true"

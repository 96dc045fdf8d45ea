"""Checkpoints never run code: every torch.load is weights-only, a resume refuses a pickled
payload or a checkpoint of another architecture by name, before Lightning touches it."""

import functools
import pathlib
import re

import pytest
import torch

from medfew.fewshot import MetaTraining, ProtoNet
from medfew.learners import PrepareContext
from medfew.models import create_backbone
from medfew.ssl import METHODS, pretrain

ROOT = pathlib.Path(__file__).resolve().parents[2]
QUIET = dict(accelerator="cpu", enable_progress_bar=False, log_every_n_steps=1)


class Payload:
    """Unpickling this touches ``marker``: stands for arbitrary code hidden in a checkpoint."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


LOAD_CALL = "torch.load" + "("  # split so that repository-wide scans do not flag this test itself


def test_every_torch_load_in_the_code_is_weights_only():
    calls = [
        (path.relative_to(ROOT), line)
        for folder in ("medfew", "experiments")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for line in path.read_text().splitlines()
        if LOAD_CALL in line
    ]
    assert calls, "no torch.load found: the scan is broken"
    unsafe = [(str(path), line.strip()) for path, line in calls if "weights_only=True" not in line]
    assert not unsafe


def test_a_pickled_payload_in_last_ckpt_is_refused_on_resume(pbc_pool, tiny_conv4, tmp_path):
    marker = tmp_path / "code-ran"
    last = tmp_path / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    torch.save({"state_dict": {}, "epoch": 0, "hook": Payload(marker)}, last)
    method = functools.partial(METHODS["simclr"], hidden_dim=32, output_dim=16)
    with pytest.raises(ValueError, match=rf"refusing to resume from {re.escape(str(last))}: it does not load as a plain tensor checkpoint"):
        pretrain(pbc_pool, tmp_path, 0, method=method, backbone=tiny_conv4, epochs=2, batch_size=8, trainer=QUIET)
    assert not marker.exists()


def test_a_truncated_last_ckpt_is_refused_by_name(pbc_split, tiny_conv4, tmp_path):
    recipe = MetaTraining(n_way=3, n_shot=1, n_query=2, steps_per_epoch=1, trainer=QUIET)
    torch.manual_seed(0)
    ProtoNet(tiny_conv4, meta_train_steps=1, meta_training=recipe).prepare(PrepareContext(tmp_path, seed=0, base=pbc_split["base"]))
    last = tmp_path / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])
    learner = ProtoNet(tiny_conv4, meta_train_steps=2, meta_training=recipe)
    with pytest.raises(ValueError, match=rf"refusing to resume from {re.escape(str(last))}.*Delete it to start afresh"):
        learner.prepare(PrepareContext(tmp_path, seed=0, base=pbc_split["base"]))


def test_a_checkpoint_of_another_architecture_is_refused_on_resume(pbc_split, tiny_conv4, tmp_path):
    recipe = MetaTraining(n_way=3, n_shot=1, n_query=2, steps_per_epoch=1, trainer=QUIET)
    torch.manual_seed(0)
    ProtoNet(tiny_conv4, meta_train_steps=1, meta_training=recipe).prepare(PrepareContext(tmp_path, seed=0, base=pbc_split["base"]))
    wider = functools.partial(create_backbone, "conv4", 3, 32, model_kwargs={"hidden": 16})
    learner = ProtoNet(wider, meta_train_steps=2, meta_training=recipe)
    last = tmp_path / "checkpoints" / "last.ckpt"
    message = (
        rf"{re.escape(str(last))} does not fit this MetaTrainingModule \(checkpoint from another architecture or settings\?\): "
        r"learner.backbone.net.features.0.0.bias: \(8,\) there, \(16,\) here"
    )
    with pytest.raises(ValueError, match=message):
        learner.prepare(PrepareContext(tmp_path, seed=0, base=pbc_split["base"]))

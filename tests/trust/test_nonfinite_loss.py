"""An exploding loss stops the real SSL and meta-training trainers with a message naming the
step, and the previous epoch's last.ckpt survives, loads weights-only and holds finite weights."""

import functools
import re

import pytest
import torch

from medfew.fewshot import MetaTraining, ProtoNet
from medfew.learners import PrepareContext
from medfew.ssl import METHODS, pretrain
from medfew.training import NonFiniteLossError

QUIET = dict(accelerator="cpu", enable_progress_bar=False, log_every_n_steps=1)


def assert_stopped_with_the_last_good_checkpoint(error: pytest.ExceptionInfo, workdir) -> None:
    """The message names the loss, epoch and step and the kept checkpoint, which is the previous epoch's."""
    last = workdir / "checkpoints" / "last.ckpt"
    found = re.fullmatch(
        rf"training loss became (\S+) at epoch (\d+), step \d+; stopped \(the last good checkpoint is {re.escape(str(last))}\)\. "
        "Lower the learning rate or check the input data.",
        str(error.value),
    )
    assert found, str(error.value)
    loss, epoch = float(found[1]), int(found[2])
    assert not loss < 1e6 and epoch >= 1  # NaN, infinite or above max_loss
    checkpoint = torch.load(last, map_location="cpu", weights_only=True)
    assert checkpoint["epoch"] == epoch - 1
    assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values() if v.is_floating_point())


def test_ssl_pretraining_stops_on_an_exploding_loss(pbc_pool, tiny_conv4, tmp_path):
    # VICReg with SGD at lr 100 (per 256 images) is fine for epoch 0 and explodes in epoch 1 (2 steps per epoch)
    method = functools.partial(METHODS["vicreg"], hidden_dim=32, output_dim=32)
    with pytest.raises(NonFiniteLossError) as error:
        pretrain(pbc_pool, tmp_path, 0, method=method, backbone=tiny_conv4, epochs=4, batch_size=8, optimizer="sgd", lr=100.0, trainer=QUIET)
    assert "at epoch 1, step 3;" in str(error.value)
    assert_stopped_with_the_last_good_checkpoint(error, tmp_path)
    assert not (tmp_path / "backbone.safetensors").exists()  # no export from a failed run


def test_meta_training_stops_on_an_exploding_loss(pbc_split, tiny_conv4, tmp_path):
    # Adam moves every weight by ~lr per step: at lr 1e4 ProtoNet's squared distances blow up within a few steps
    recipe = MetaTraining(n_way=3, n_shot=1, n_query=2, steps_per_epoch=1, lr=1e4, trainer=QUIET)
    torch.manual_seed(0)
    learner = ProtoNet(tiny_conv4, meta_train_steps=6, meta_training=recipe)
    with pytest.raises(NonFiniteLossError) as error:
        learner.prepare(PrepareContext(tmp_path, seed=0, base=pbc_split["base"]))
    assert_stopped_with_the_last_good_checkpoint(error, tmp_path)

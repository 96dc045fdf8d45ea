"""Matching Networks: exact attention math on a hand-made case, and one meta-training run."""

import math
from pathlib import Path

import torch
from torch import nn

from medfew.fewshot.matching_net import MatchingNet
from medfew.learners import PrepareContext

# Three 1 x 1 x 2 "images" of two classes; an identity (flatten) backbone makes features = pixels.
SUPPORT = torch.tensor([[1.0, 0.0], [0.0, 2.0], [0.0, 3.0]]).view(3, 1, 1, 2)
LABELS = torch.tensor([0, 1, 1])


def test_probabilities_are_cosine_attention_over_support_labels():
    learner = MatchingNet(nn.Flatten(), scale=2.0).eval()
    query = torch.tensor([[1.0, 1.0]]).view(1, 1, 1, 2)
    # cos to every support image is 1/sqrt(2): uniform attention 1/3 each -> p = (1/3, 2/3)
    torch.testing.assert_close(
        learner.predict(learner.adapt(SUPPORT, LABELS), query),
        torch.tensor([[1 / 3, 2 / 3]]),
    )
    query = torch.tensor([[1.0, 0.0]]).view(1, 1, 1, 2)
    # cos = (1, 0, 0): weights e^2 : 1 : 1
    p0 = math.exp(2) / (math.exp(2) + 2)
    torch.testing.assert_close(
        learner.predict(learner.adapt(SUPPORT, LABELS), query),
        torch.tensor([[p0, 1 - p0]]),
    )


def test_logits_are_log_probabilities():
    learner = MatchingNet(nn.Flatten(), scale=1.0).eval()
    state = learner.adapt(SUPPORT, LABELS)
    query = torch.tensor([[0.3, 0.7], [2.0, -1.0]]).view(2, 1, 1, 2)
    torch.testing.assert_close(learner.logits(state, query).exp().sum(dim=1), torch.ones(2))


def test_meta_training_changes_the_backbone(pbc_split, tiny_conv4, tiny_recipe, tmp_path: Path):
    learner = MatchingNet(tiny_conv4, meta_train_steps=2, meta_training=tiny_recipe)
    before = [p.detach().clone() for p in learner.parameters()]
    learner.prepare(PrepareContext(workdir=tmp_path, seed=0, base=pbc_split["base"], val=pbc_split["val"]))
    assert not learner.training
    assert any(not torch.equal(a, b) for a, b in zip(before, learner.parameters()))
    assert (tmp_path / "checkpoints" / "best.ckpt").exists()

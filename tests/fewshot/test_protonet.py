"""Prototypical Networks: exact prototype and distance math on a hand-made case."""

import math

import pytest
import torch
from torch import nn

from medfew.fewshot import ProtoNet

# Two classes of 1 x 1 x 2 "images"; an identity (flatten) backbone makes features = pixels.
SUPPORT = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0], [0.0, 2.0]]).view(4, 1, 1, 2)
LABELS = torch.tensor([0, 0, 1, 1])


def test_prototypes_are_class_means():
    prototypes = ProtoNet(nn.Flatten()).adapt(SUPPORT, LABELS)
    torch.testing.assert_close(prototypes, torch.tensor([[1.0, 0.0], [0.0, 3.0]]))


def test_squared_euclidean_logits_and_probabilities():
    learner = ProtoNet(nn.Flatten(), distance="euclidean")
    prototypes = learner.adapt(SUPPORT, LABELS)
    query = torch.tensor([[1.0, 1.0]]).view(1, 1, 1, 2)
    # |(1,1)-(1,0)|^2 = 1, |(1,1)-(0,3)|^2 = 1 + 4 = 5
    torch.testing.assert_close(learner.logits(prototypes, query), torch.tensor([[-1.0, -5.0]]))
    p0 = 1 / (1 + math.exp(-4))
    torch.testing.assert_close(learner.predict(prototypes, query), torch.tensor([[p0, 1 - p0]]))


def test_cosine_logits_are_scaled_similarities():
    learner = ProtoNet(nn.Flatten(), distance="cosine", scale=10.0)
    query = torch.tensor([[2.0, 1.0]]).view(1, 1, 1, 2)
    expected = 10 * torch.tensor([[2 / math.sqrt(5), 1 / math.sqrt(5)]])
    torch.testing.assert_close(learner.logits(learner.adapt(SUPPORT, LABELS), query), expected)


def test_unknown_distance_is_named():
    with pytest.raises(ValueError, match="unknown distance 'manhattan'"):
        ProtoNet(nn.Flatten(), distance="manhattan")

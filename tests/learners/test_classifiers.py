"""The classifier maths in one place (medfew.learners.classifiers), on hand-made features."""

import math

import pytest
import torch

from medfew.learners.base import support_ways
from medfew.learners.classifiers import CosineClassifier, class_means, prototype_head, prototype_logits

# Two classes of 2-d features: means (1, 0) and (0, 3).
FEATURES = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0], [0.0, 2.0]])
LABELS = torch.tensor([0, 0, 1, 1])
PROTOTYPES = torch.tensor([[1.0, 0.0], [0.0, 3.0]])


def test_class_means_and_their_gradient():
    features = FEATURES.clone().requires_grad_()
    means = class_means(features, LABELS)
    torch.testing.assert_close(means, PROTOTYPES)
    means.sum().backward()
    torch.testing.assert_close(features.grad, torch.full((4, 2), 0.5))  # each image is half its class mean


def test_prototype_logits_euclidean_and_cosine():
    query = torch.tensor([[1.0, 1.0], [2.0, 1.0]])
    # squared distances: (1, 1) -> 1 and 5; (2, 1) -> 2 and 8
    torch.testing.assert_close(prototype_logits(query, PROTOTYPES, "euclidean", 2.0), torch.tensor([[-2.0, -10.0], [-4.0, -16.0]]))
    cos = torch.tensor([[1 / math.sqrt(2), 1 / math.sqrt(2)], [2 / math.sqrt(5), 1 / math.sqrt(5)]])
    torch.testing.assert_close(prototype_logits(query, PROTOTYPES, "cosine", 10.0), 10 * cos)
    with pytest.raises(ValueError, match="unknown distance 'manhattan'"):
        prototype_logits(query, PROTOTYPES, "manhattan")


def test_cosine_classifier_logits():
    head = CosineClassifier(2, 2, scale=2.0)
    head.weight.data = torch.tensor([[3.0, 4.0], [0.0, 1.0]])
    # x = (3, 4): cos with (3, 4) is 1, with (0, 1) is 4/5; x = (-1, 0): -3/5 and 0
    torch.testing.assert_close(head(torch.tensor([[3.0, 4.0], [-1.0, 0.0]])), torch.tensor([[2.0, 1.6], [-1.2, 0.0]]))


def test_prototype_head_starts_as_the_prototype_classifier():
    query = torch.tensor([[1.0, 1.0], [-2.0, 0.5]])
    linear = prototype_head(PROTOTYPES, "euclidean", 1.0)
    # W = 2 c_k, b = -||c_k||^2: logits (2 - 1, 6 - 9) for (1, 1); equal to -||f - c_k||^2 + ||f||^2
    torch.testing.assert_close(linear.weight.data, torch.tensor([[2.0, 0.0], [0.0, 6.0]]))
    torch.testing.assert_close(linear.bias.data, torch.tensor([-1.0, -9.0]))
    torch.testing.assert_close(linear(query)[0], torch.tensor([1.0, -3.0]))
    expected = prototype_logits(query, PROTOTYPES, "euclidean", 1.0).softmax(-1)
    torch.testing.assert_close(linear(query).softmax(-1), expected)
    cosine = prototype_head(PROTOTYPES, "cosine", 10.0)
    torch.testing.assert_close(cosine(query), prototype_logits(query, PROTOTYPES, "cosine", 10.0))
    assert all(p.requires_grad for p in [*linear.parameters(), *cosine.parameters()])  # trainable heads


def test_support_ways_names_a_missing_class_and_a_too_small_head():
    assert support_ways(torch.tensor([1, 0, 2, 2])) == 3
    with pytest.raises(ValueError, match=r"no image of class 1 .*counts per class: \[2, 0, 1\]"):
        support_ways(torch.tensor([0, 0, 2]))
    with pytest.raises(ValueError, match="3 classes but this learner's head has 2 outputs"):
        support_ways(torch.tensor([0, 1, 2]), limit=2)

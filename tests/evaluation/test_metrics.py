"""Metrics on hand-checked predictions, and chance-level predictions scoring as chance."""

import pytest
import torch

from medfew.evaluation.metrics import check_probabilities, classification_metrics, confusion_matrix, per_class_accuracy


def one_hot(predicted: list[int], n_way: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(predicted), n_way).float()


def test_hand_computed_metrics():
    labels = torch.tensor([0, 0, 0, 1])
    probs = one_hot([0, 0, 1, 1], 2)
    m = classification_metrics(probs, labels)
    assert m["acc"] == pytest.approx(0.75)
    assert m["bal_acc"] == pytest.approx((2 / 3 + 1) / 2)  # mean recall
    assert m["macro_f1"] == pytest.approx((0.8 + 2 / 3) / 2)  # F1 0.8 (P 1, R 2/3) and 2/3 (P 1/2, R 1)
    assert m["ece"] == pytest.approx(0.25)  # confidence 1 everywhere, accuracy 3/4
    assert confusion_matrix(probs, labels).tolist() == [[2, 1], [0, 1]]
    assert per_class_accuracy(probs, labels).tolist() == pytest.approx([2 / 3, 1.0])


def test_expected_calibration_error_of_overconfident_predictions():
    # every prediction says class 0 with confidence 0.9; 3 of 4 are right: ECE = |0.9 - 0.75|
    probs = torch.tensor([[0.9, 0.1]] * 4)
    assert classification_metrics(probs, torch.tensor([0, 0, 0, 1]))["ece"] == pytest.approx(0.15, abs=1e-6)


def test_perfect_predictions():
    labels = torch.arange(4).repeat(5)
    m = classification_metrics(one_hot(labels.tolist(), 4), labels)
    assert m == pytest.approx({"acc": 1.0, "bal_acc": 1.0, "macro_f1": 1.0, "auroc": 1.0, "ece": 0.0})


def test_uniform_predictions_score_as_chance_on_imbalanced_binary_data():
    labels = torch.tensor([0] * 27 + [1] * 73)  # BreastMNIST-like imbalance
    m = classification_metrics(torch.full((100, 2), 0.5), labels)
    assert m["bal_acc"] == pytest.approx(0.5)
    assert m["auroc"] == pytest.approx(0.5)
    assert m["acc"] == pytest.approx(0.27)  # argmax ties go to class 0: accuracy alone misleads


@pytest.mark.parametrize("n_way", [2, 5])
def test_random_predictions_score_near_chance(n_way):
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(n_way).repeat(2000)
    probs = torch.rand(len(labels), n_way, generator=generator).softmax(dim=1)
    m = classification_metrics(probs, labels)
    assert m["acc"] == pytest.approx(1 / n_way, abs=0.02)
    assert m["bal_acc"] == pytest.approx(1 / n_way, abs=0.02)
    assert m["auroc"] == pytest.approx(0.5, abs=0.02)


def test_auroc_is_nan_with_one_class_and_ranks_binary_scores():
    assert torch.isnan(torch.tensor(classification_metrics(one_hot([0, 1], 2), torch.tensor([0, 0]))["auroc"]))
    probs = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.7, 0.3], [0.2, 0.8]])
    # class-1 scores 0.1, 0.4 (negatives) vs 0.3, 0.8 (positives): 3 of 4 pairs ordered
    assert classification_metrics(probs, torch.tensor([0, 0, 1, 1]))["auroc"] == pytest.approx(0.75)


def test_probability_contract_errors_name_the_learner():
    with pytest.raises(ValueError, match=r"mine returned probabilities of shape \(3, 2\); expected \(3, 4\)"):
        check_probabilities(torch.full((3, 2), 0.5), 3, 4, "mine")
    with pytest.raises(ValueError, match="summing to"):
        check_probabilities(torch.ones(3, 2), 3, 2, "mine")

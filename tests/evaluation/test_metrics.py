"""Metrics on hand-checked predictions, over the classes present, and chance-level predictions scoring as chance."""

import math

import pytest
import torch

from medfew.evaluation.metrics import check_probabilities, classification_metrics, confusion_matrix, per_class_accuracy, why_undefined


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
    assert m["n_present"] == 2
    assert confusion_matrix(probs, labels).tolist() == [[2, 1], [0, 1]]
    assert per_class_accuracy(probs, labels).tolist() == pytest.approx([2 / 3, 1.0])


def test_expected_calibration_error_of_overconfident_predictions():
    # every prediction says class 0 with confidence 0.9; 3 of 4 are right: ECE = |0.9 - 0.75|
    probs = torch.tensor([[0.9, 0.1]] * 4)
    assert classification_metrics(probs, torch.tensor([0, 0, 0, 1]))["ece"] == pytest.approx(0.15, abs=1e-6)


def test_perfect_predictions():
    labels = torch.arange(4).repeat(5)
    m = classification_metrics(one_hot(labels.tolist(), 4), labels)
    assert m == pytest.approx({"acc": 1.0, "bal_acc": 1.0, "macro_f1": 1.0, "auroc": 1.0, "ece": 0.0, "n_present": 4})


def test_perfect_predictions_with_a_class_absent_score_one():
    # the issue: 3 of 4 classes in the query set, all predicted right, gave AUROC 0.75 (the absent class as 0)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    m = classification_metrics(one_hot(labels.tolist(), 4), labels)
    assert m == pytest.approx({"acc": 1.0, "bal_acc": 1.0, "macro_f1": 1.0, "auroc": 1.0, "ece": 0.0, "n_present": 3})


def test_auroc_averages_the_present_classes_one_vs_rest():
    # class 2 is absent. Class 0: positives 0.6, 0.4 vs negatives 0.5, 0.2 -> 3 of 4 pairs ordered;
    # class 1: positives 0.4, 0.7 vs negatives 0.3, 0.4 -> 3 pairs and one tie (1/2) = 3.5 / 4
    probs = torch.tensor([[0.6, 0.3, 0.1], [0.4, 0.4, 0.2], [0.5, 0.4, 0.1], [0.2, 0.7, 0.1]])
    m = classification_metrics(probs, torch.tensor([0, 0, 1, 1]))
    assert m["auroc"] == pytest.approx((0.75 + 0.875) / 2)
    assert m["n_present"] == 2


def test_predictions_into_an_absent_class_lower_the_present_classes_only():
    # labels 0, 0, 1, 1 of n_way = 3; one class-0 image predicted as the absent class 2
    m = classification_metrics(one_hot([0, 2, 1, 1], 3), torch.tensor([0, 0, 1, 1]))
    assert m["bal_acc"] == pytest.approx((0.5 + 1) / 2)  # recalls of classes 0 and 1, not (0.5 + 1 + 0) / 3
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1) / 2)  # F1 2/3 (P 1, R 1/2) and 1
    assert m["acc"] == pytest.approx(0.75)


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
    m = classification_metrics(one_hot([0, 1], 2), torch.tensor([0, 0]))
    assert math.isnan(m["auroc"]) and m["n_present"] == 1 and m["bal_acc"] == pytest.approx(0.5)
    assert why_undefined("auroc", m["n_present"]) == "one class in the evaluated labels: AUROC needs two"
    probs = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.7, 0.3], [0.2, 0.8]])
    # class-1 scores 0.1, 0.4 (negatives) vs 0.3, 0.8 (positives): 3 of 4 pairs ordered
    assert classification_metrics(probs, torch.tensor([0, 0, 1, 1]))["auroc"] == pytest.approx(0.75)


def test_one_way_task_has_every_metric_but_auroc():
    m = classification_metrics(torch.ones(3, 1), torch.zeros(3, dtype=torch.long))
    assert {k: v for k, v in m.items() if k != "auroc"} == pytest.approx({"acc": 1.0, "bal_acc": 1.0, "macro_f1": 1.0, "ece": 0.0, "n_present": 1})
    assert math.isnan(m["auroc"])


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match=r"n >= 1; got \(0, 2\) and \(0,\)"):
        classification_metrics(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match=r"labels 0\.\.2 outside 0\.\.1 \(n_way = 2\)"):
        classification_metrics(one_hot([0, 1, 1], 2), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"got \(3, 2\) and \(2,\)"):
        confusion_matrix(one_hot([0, 1, 1], 2), torch.tensor([0, 1]))


def test_probability_contract_errors_name_the_learner():
    with pytest.raises(ValueError, match=r"mine returned probabilities of shape \(3, 2\); expected \(3, 4\)"):
        check_probabilities(torch.full((3, 2), 0.5), 3, 4, "mine")
    with pytest.raises(ValueError, match="summing to"):
        check_probabilities(torch.ones(3, 2), 3, 2, "mine")

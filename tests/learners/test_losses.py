"""Noise-robust losses of the fine-tuning learners: generalised cross-entropy and label smoothing."""

import pytest
import torch
import torch.nn.functional as F

from medfew.learners.finetune import FineTune
from medfew.learners.losses import classification_loss, generalized_cross_entropy

LOGITS = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0], [-1.0, 3.0, 0.0]])
LABELS = torch.tensor([0, 2, 1])


def test_gce_spans_cross_entropy_and_mean_absolute_error():
    p = F.softmax(LOGITS, dim=1)[torch.arange(3), LABELS]
    assert generalized_cross_entropy(LOGITS, LABELS, q=1e-4).item() == pytest.approx(F.cross_entropy(LOGITS, LABELS).item(), rel=1e-3)
    assert generalized_cross_entropy(LOGITS, LABELS, q=1.0).item() == pytest.approx((1 - p).mean().item())
    assert generalized_cross_entropy(LOGITS, LABELS, q=0.7).item() == pytest.approx(((1 - p**0.7) / 0.7).mean().item())
    weight = torch.tensor([1.0, 2.0, 3.0])
    weighted = ((1 - p**0.7) / 0.7 * weight[LABELS]).sum() / weight[LABELS].sum()
    assert classification_loss(LOGITS, LABELS, "gce", weight).item() == pytest.approx(weighted.item())


def test_a_flipped_label_costs_gce_less_than_cross_entropy():
    confident = torch.tensor([[8.0, 0.0]])  # the model is sure of class 0; the label says 1
    ce = classification_loss(confident, torch.tensor([1])).item()
    gce = classification_loss(confident, torch.tensor([1]), "gce").item()
    assert gce < 1 / 0.7 < ce  # GCE is bounded by 1 / q


def test_label_smoothing_reaches_the_training_loss(tiny_conv4):
    smoothed = FineTune(tiny_conv4, label_smoothing=0.2, steps=1)
    expected = F.cross_entropy(LOGITS, LABELS, label_smoothing=0.2).item()
    assert smoothed.criterion(LOGITS, LABELS, None).item() == pytest.approx(expected)


def test_bad_loss_settings_are_refused(tiny_conv4):
    with pytest.raises(ValueError, match="unknown loss 'mae'"):
        FineTune(tiny_conv4, loss="mae")
    with pytest.raises(ValueError, match="label_smoothing .* applies to loss=ce"):
        FineTune(tiny_conv4, loss="gce", label_smoothing=0.1)
    with pytest.raises(ValueError, match=r"gce_q must be in \(0, 1\]"):
        FineTune(tiny_conv4, loss="gce", gce_q=0.0)

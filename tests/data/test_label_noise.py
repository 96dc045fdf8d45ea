"""Label flips: the requested share, to another class, seeded; pairwise moves k to k + 1."""

import pytest
import torch

from medfew.data.label_noise import flip_labels


def test_flips_the_requested_share_to_other_classes_with_a_seed():
    labels = torch.arange(4).repeat_interleave(25)
    flipped = flip_labels(labels, 0.2, 4, "symmetric", torch.Generator().manual_seed(0))
    assert int((flipped != labels).sum()) == 20
    again = flip_labels(labels, 0.2, 4, "symmetric", torch.Generator().manual_seed(0))
    assert torch.equal(flipped, again)
    assert not torch.equal(flipped, flip_labels(labels, 0.2, 4, "symmetric", torch.Generator().manual_seed(1)))
    assert torch.equal(flip_labels(labels, 0.0, 4), labels)


def test_pairwise_noise_moves_each_class_to_the_next():
    labels = torch.arange(3).repeat_interleave(10)
    flipped = flip_labels(labels, 0.4, 3, "pairwise", torch.Generator().manual_seed(0))
    moved = flipped != labels
    assert int(moved.sum()) == 12
    assert torch.equal(flipped[moved], (labels[moved] + 1) % 3)


def test_no_class_loses_its_last_label():
    labels = torch.tensor([0, 1, 1, 1])
    for seed in range(20):
        flipped = flip_labels(labels, 0.5, 2, "symmetric", torch.Generator().manual_seed(seed))
        assert int((flipped != labels).sum()) == 2 and set(flipped.tolist()) == {0, 1}


def test_bad_rates_and_modes_are_refused():
    with pytest.raises(ValueError, match=r"share of the training labels in \[0, 1\), got 1.0"):
        flip_labels(torch.zeros(4, dtype=torch.long), 1.0, 2)
    with pytest.raises(ValueError, match="unknown label noise mode 'asymmetric'"):
        flip_labels(torch.zeros(4, dtype=torch.long), 0.1, 2, "asymmetric")

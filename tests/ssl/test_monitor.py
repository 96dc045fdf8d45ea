import numpy as np
import pytest
import torch
from torch import nn

from medfew.data import UNLABELED, ImageData
from medfew.ssl import knn_accuracy, pool_and_monitor
from medfew.ssl.monitor import SPREAD_SAMPLE, embedding_std, halves


class MeanBrightness(nn.Module):
    """(B, C, H, W) -> (B, 2) features whose direction encodes the mean intensity."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x):
        m = x.mean(dim=(1, 2, 3)) * self.scale
        return torch.stack([torch.cos(m * 1.5), torch.sin(m * 1.5)], dim=1)


def constant_images(levels: list[int], per_class: int) -> ImageData:
    """Class c: per_class images of constant intensity levels[c] (+-2)."""
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(len(levels)).repeat_interleave(per_class)
    base = torch.tensor(levels)[labels].view(-1, 1, 1, 1)
    images = (base + torch.randint(-2, 3, (len(labels), 1, 4, 4), generator=generator)).to(torch.uint8)
    return ImageData(images, labels, tuple(f"c{i}" for i in range(len(levels))))


def test_knn_accuracy_is_one_on_separable_features_and_chance_when_features_are_equal():
    data = constant_images([20, 100, 180, 250], per_class=6)
    bank, query = halves(data)
    assert len(bank) == len(query) == 12 and torch.equal(bank.class_counts(), torch.full((4,), 3))
    assert knn_accuracy(MeanBrightness(), bank, query, k=3) == 1.0
    constant = MeanBrightness()
    constant.scale.data.zero_()  # every image -> the same feature
    assert knn_accuracy(constant, bank, query, k=12) == 0.25


def test_pool_and_monitor_are_disjoint_and_the_pool_has_no_labels(pbc32):
    pool, monitor = pool_and_monitor(pbc32, monitor_per_class=2, seed=0)
    assert len(monitor) == 16 and torch.equal(monitor.class_counts(), torch.full((8,), 2))
    assert len(pool) == 16 and bool((pool.labels == UNLABELED).all())
    flat = lambda d: {bytes(img.numpy()) for img in d.images}  # noqa: E731
    assert not flat(pool) & flat(monitor)
    labelled, same_monitor = pool_and_monitor(pbc32, monitor_per_class=2, seed=0, keep_labels=True)
    assert torch.equal(labelled.images, pool.images) and torch.equal(same_monitor.images, monitor.images)
    assert torch.equal(labelled.class_counts(), torch.full((8,), 2))


def test_with_official_splits_the_pool_is_the_train_split(tiny_data):
    split = np.array(["train", "test"] * 20)
    data = ImageData(tiny_data.images, tiny_data.labels, tiny_data.class_names, split=split)
    pool, monitor = pool_and_monitor(data, monitor_per_class=2)
    assert len(pool) == 20 and len(monitor) == 8 and set(monitor.split) == {"test"}


def test_without_labels_the_monitor_is_a_seeded_sample_of_the_pool():
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (SPREAD_SAMPLE + 88, 1, 4, 4), dtype=torch.uint8, generator=generator)
    unlabeled = ImageData(images, torch.full((len(images),), UNLABELED), ("a", "b"))
    pool, monitor = pool_and_monitor(unlabeled, monitor_per_class=25, seed=1)
    assert torch.equal(pool.images, images) and len(monitor) == SPREAD_SAMPLE
    assert not monitor.class_counts().any()
    assert len({bytes(img.numpy()) for img in monitor.images} - {bytes(img.numpy()) for img in images}) == 0
    _, other_seed = pool_and_monitor(unlabeled, monitor_per_class=25, seed=2)
    assert not torch.equal(other_seed.images, monitor.images)
    labelled = ImageData(images, torch.arange(len(images)) % 2, ("a", "b"))
    everything, same = pool_and_monitor(labelled, monitor_per_class=0, seed=1)  # 0: no labels held out
    assert torch.equal(everything.images, images) and torch.equal(same.images, monitor.images)


def test_a_class_smaller_than_the_monitor_is_named(tiny_data):
    with pytest.raises(ValueError, match=r"tiny: class 'a' has 10 images to hold out .* monitor_per_class = 11 \(lower it"):
        pool_and_monitor(tiny_data, monitor_per_class=11)


def test_embedding_std_is_zero_when_collapsed_and_near_one_over_sqrt_d_when_spread():
    collapsed = torch.tensor([[3.0, 4.0]]).repeat(5, 1)  # every image one point (any length)
    assert embedding_std(collapsed) == 0.0
    spread = torch.tensor([[2.0, 0.0], [-1.0, 0.0], [0.0, 5.0], [0.0, -0.5]])  # +-e1, +-e2 once normalised
    assert embedding_std(spread) == pytest.approx((2 / 3) ** 0.5)  # per dimension: values 1, -1, 0, 0
    generator = torch.Generator().manual_seed(0)
    gaussian = torch.randn(4000, 64, generator=generator)  # uniform directions on the sphere
    assert embedding_std(gaussian) == pytest.approx(64**-0.5, rel=0.02)
    shared = gaussian + 20.0  # a large common direction: spread, but reads low
    assert embedding_std(shared) < 0.1 * 64**-0.5
    with pytest.raises(ValueError, match="at least 2 rows, got 1"):
        embedding_std(spread[:1])

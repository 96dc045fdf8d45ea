"""Label budgets are exact, stratified and seeded; class splits are disjoint and validated."""

import pytest
import torch

from medfew.data import UNLABELED, ImageData, class_split, label_budget


def test_per_class_budget(bloodcells: ImageData) -> None:
    budget = label_budget(bloodcells, per_class=5, seed=0)
    assert bloodcells.labels[budget.labelled].bincount().tolist() == [5] * 8
    assert len(budget.unlabeled) == 2000 - 40
    assert sorted(budget.labelled.tolist() + budget.unlabeled.tolist()) == list(range(2000))
    again, other = label_budget(bloodcells, per_class=5, seed=0), label_budget(bloodcells, per_class=5, seed=1)
    assert torch.equal(budget.labelled, again.labelled) and not torch.equal(budget.labelled, other.labelled)


def test_fraction_budget_is_stratified(breastmnist: ImageData) -> None:
    train = breastmnist.select_split("train")
    assert train.class_counts().tolist() == [147, 399]
    budget = label_budget(train, fraction=0.1, seed=3)
    assert train.labels[budget.labelled].bincount().tolist() == [15, 40]  # round(14.7), round(39.9)
    assert len(budget.unlabeled) == 546 - 55
    assert not set(budget.labelled.tolist()) & set(budget.unlabeled.tolist())


def test_unlabeled_images_join_the_pool(tiny_data: ImageData) -> None:
    labels = tiny_data.labels.clone()
    labels[:3] = UNLABELED
    data = ImageData(tiny_data.images, labels, tiny_data.class_names, name="partly")
    budget = label_budget(data, per_class=2)
    assert set(budget.unlabeled.tolist()) == set(range(40)) - set(budget.labelled.tolist())
    assert {0, 1, 2} <= set(budget.unlabeled.tolist())


def test_budget_errors(tiny_data: ImageData) -> None:
    with pytest.raises(ValueError, match="tiny: class 'a' has 10 images; per_class = 11"):
        label_budget(tiny_data, per_class=11)
    with pytest.raises(ValueError, match="exactly one of per_class and fraction"):
        label_budget(tiny_data, per_class=1, fraction=0.5)
    with pytest.raises(ValueError, match="fraction must be in"):
        label_budget(tiny_data, fraction=1.5)


def test_class_split_by_counts_and_lists(bloodcells: ImageData) -> None:
    split = class_split(bloodcells.class_names, 4, 2, 2, seed=0)
    assert len(split.base) == 4 and len(split.val) == 2 and len(split.novel) == 2
    assert sorted(split.base + split.val + split.novel) == sorted(bloodcells.class_names)
    assert class_split(bloodcells.class_names, 4, 2, 2, seed=0) == split
    assert class_split(bloodcells.class_names, 4, 2, 2, seed=1) != split
    parts = class_split(bloodcells.class_names, ["basophil", "platelet"], ["ig"], ["monocyte"]).apply(bloodcells)
    assert parts["base"].class_names == ("basophil", "platelet") and len(parts["base"]) == 500
    assert parts["base"].labels.unique().tolist() == [0, 1] and len(parts["novel"]) == 250


@pytest.mark.parametrize(
    ("base", "val", "novel", "error", "message"),
    [
        (["a"], ["a"], ["b"], ValueError, "class 'a' is in both base and val"),
        (["a"], ["zebra"], ["b"], KeyError, "val class 'zebra' is not a class"),
        (3, 1, 1, ValueError, "base \\+ val \\+ novel = 5 classes, but there are 4"),
        (2, ["c"], 1, ValueError, "all as class lists or all as counts"),
    ],
)
def test_class_split_errors(base, val, novel, error, message) -> None:
    with pytest.raises(error, match=message):
        class_split(("a", "b", "c", "d"), base, val, novel)

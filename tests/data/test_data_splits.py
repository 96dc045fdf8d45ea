"""Train / val / test parts: official, seeded stratified and repeated k-fold, group-aware, with exact counts."""

import numpy as np
import pytest
import torch

from medfew.data import UNLABELED, DataSplit, ImageData, audit_duplicates, label_budget, make_splits
from medfew.data.stratify import split_groups

FRACTIONS = {"train": 0.7, "val": 0.1, "test": 0.2}


def noise(n: int, seed: int = 0) -> torch.Tensor:
    """(n, 1, 8, 8) random uint8 images: no two within the duplicate threshold."""
    return torch.randint(0, 256, (n, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def dataset(per_class: list[int], groups: list[int] | None = None, name: str = "toy") -> ImageData:
    labels = torch.arange(len(per_class)).repeat_interleave(torch.tensor(per_class))
    names = tuple("abcdefgh"[: len(per_class)])
    filenames = np.array([f"img{i}.png" for i in range(len(labels))])
    grouped = None if groups is None else torch.tensor(groups)
    return ImageData(noise(len(labels)), labels, names, groups=grouped, name=name, filenames=filenames)


def counts(split: DataSplit) -> dict[str, list[int]]:
    """Labelled images per class in each part."""
    data = split.data
    labelled = data.labels != UNLABELED
    return {
        p: data.labels[labelled & torch.from_numpy(data.split == p)].bincount(minlength=data.n_classes).tolist()
        for p in data.split_names()
    }


def assert_groups_kept(split: DataSplit, groups: np.ndarray) -> None:
    for group in np.unique(groups):
        assert len(set(split.data.split[groups == group])) == 1, f"group {group} crosses parts"


def test_stratified_counts_are_exact_and_seeded() -> None:
    data = dataset([10, 20])
    (split,) = make_splits(data, "stratified", FRACTIONS, seed=0)
    assert split.name == "stratified" and torch.equal(split.data.images, data.images)
    assert counts(split) == {"test": [2, 4], "train": [7, 14], "val": [1, 2]}  # 0.7 / 0.1 / 0.2 of 10 and 20
    again, other = make_splits(data, "stratified", FRACTIONS, seed=0)[0], make_splits(data, "stratified", FRACTIONS, seed=1)[0]
    assert (again.data.split == split.data.split).all() and (other.data.split != split.data.split).any()


def test_three_images_reach_three_parts() -> None:
    """0.1 x 3 rounds to no val image; every part still gets one of each class."""
    (split,) = make_splits(dataset([3, 3]), "stratified", FRACTIONS)
    assert counts(split) == {"test": [1, 1], "train": [1, 1], "val": [1, 1]}


def test_no_val_part() -> None:
    (split,) = make_splits(dataset([5, 10]), "stratified", {"train": 0.6, "test": 0.4})
    assert counts(split) == {"test": [2, 4], "train": [3, 6]}


def test_kfold_counts_and_repeats() -> None:
    data = dataset([10, 10, 10])
    splits = make_splits(data, "kfold", FRACTIONS, folds=5, repeats=2, seed=3)
    assert [s.name for s in splits[:6]] == [f"repeat0-fold{f}" for f in range(5)] + ["repeat1-fold0"]
    for split in splits:  # test 1/5, val 0.1 / (0.7 + 0.1) of the other 8
        assert counts(split) == {"test": [2, 2, 2], "train": [7, 7, 7], "val": [1, 1, 1]}
    tests = np.stack([s.data.split == "test" for s in splits]).reshape(2, 5, -1)
    assert (tests.sum(1) == 1).all()  # each image is in test exactly once per repeat
    assert (tests[0] != tests[1]).any()  # the second repeat reshuffles
    again = make_splits(data, "kfold", FRACTIONS, folds=5, repeats=2, seed=3)
    assert all((a.data.split == b.data.split).all() for a, b in zip(splits, again))


def test_kfold_without_val() -> None:
    splits = make_splits(dataset([6, 9]), "kfold", {"train": 1.0}, folds=3)
    assert [counts(s) for s in splits] == [{"test": [2, 3], "train": [4, 6]}] * 3


def test_groups_stay_in_one_part() -> None:
    """Class a: 6 patients of 2 images; class b: 6 patients of 3 (ids shared across classes are distinct patients)."""
    groups = [g for g in range(6) for _ in range(2)] + [g for g in range(6, 12) for _ in range(3)]
    data = dataset([12, 18], groups)
    for split in make_splits(data, "stratified", {"train": 0.5, "val": 0.25, "test": 0.25}) + make_splits(data, "kfold", folds=3):
        assert_groups_kept(split, np.array(groups))
        assert all(min(row) > 0 for row in counts(split).values())


def test_parts_follow_the_images_not_their_order() -> None:
    data = dataset([8, 8])
    order = torch.randperm(16, generator=torch.Generator().manual_seed(5))
    for kind in ("stratified", "kfold"):
        first = make_splits(data, kind, seed=2, folds=4)
        shuffled = make_splits(data.subset(order), kind, seed=2, folds=4)
        assert all((a.data.split[order.numpy()] == b.data.split).all() for a, b in zip(first, shuffled))


def test_duplicates_are_grouped() -> None:
    """2 copies 0; 3 is 1 brightened by 2 (a near duplicate); 4 shares data group 7 with 5, and 5 copies 6."""
    images = noise(8)
    images[2], images[3], images[6] = images[0], (images[1].int() + 2).clamp(max=255).to(torch.uint8), images[5]
    data = ImageData(images, torch.zeros(8, dtype=torch.long), ("a",), groups=torch.tensor([0, 1, 2, 3, 7, 7, 4, 5]))
    assert partition(split_groups(data, threshold=4, duplicates=True)) == {(0, 2), (1, 3), (4, 5, 6), (7,)}
    assert partition(split_groups(data, threshold=None, duplicates=True)) == {(0, 2), (1,), (3,), (4, 5, 6), (7,)}
    assert partition(split_groups(data, threshold=4, duplicates=False)) == {(0,), (1,), (2,), (3,), (4, 5), (6,), (7,)}


def partition(groups: np.ndarray) -> set[tuple[int, ...]]:
    return {tuple(np.flatnonzero(groups == g).tolist()) for g in np.unique(groups)}


def test_no_duplicate_crosses_parts(leaky_pairs: ImageData) -> None:
    for split in make_splits(leaky_pairs, "kfold", folds=3, repeats=2):
        assert len(audit_duplicates(split.data, threshold=4)) == 0
    ungrouped = make_splits(leaky_pairs, "kfold", folds=3, group_duplicates=False)
    assert all(len(audit_duplicates(split.data, threshold=4)) > 0 for split in ungrouped)


@pytest.fixture
def leaky_pairs() -> ImageData:
    """3 classes x 6 images, each image with a pixel copy and a near copy in its class."""
    base = noise(18, seed=4)
    near = (base.int() + 1).clamp(max=255).to(torch.uint8)
    labels = torch.arange(3).repeat_interleave(6).repeat(3)
    return ImageData(torch.cat([base, base, near]), labels, ("a", "b", "c"), name="copies")


def test_unlabelled_images_and_their_groups_go_to_train() -> None:
    data = dataset([6, 6], groups=list(range(12)))
    labels = torch.cat([data.labels, torch.full((3,), UNLABELED)])
    groups = torch.cat([data.groups, torch.tensor([0, 6, 99])])  # share a group with image 0 (a) and 6 (b)
    pool = ImageData(torch.cat([data.images, noise(3, seed=9)]), labels, data.class_names, groups=groups, name="mixed")
    (split,) = make_splits(pool, "stratified", {"train": 0.5, "val": 0.25, "test": 0.25})
    assert (split.data.split[[0, 6, 12, 13, 14]] == "train").all()
    assert counts(split) == {"test": [1, 1], "train": [4, 4], "val": [1, 1]}


def test_official_split() -> None:
    data = dataset([2, 2])
    with_split = ImageData(data.images, data.labels, data.class_names, split=np.array(["train", "test"] * 2), name="toy")
    assert make_splits(with_split) == [DataSplit("official", with_split)]
    with pytest.raises(ValueError, match="toy has no official split; the official split needs train and test. "
                       "Set data.split=stratified .*or data.split=kfold"):  # fmt: skip
        make_splits(data)
    train_only = ImageData(data.images, data.labels, data.class_names, split=np.array(["train"] * 4), name="toy")
    with pytest.raises(ValueError, match="toy has only the split\\(s\\) train; the official split needs train and test"):
        make_splits(train_only, "official")


@pytest.mark.parametrize(
    ("per_class", "groups", "kind", "message"),
    [
        ([10, 3], None, "kfold", "toy: class 'b' has 3 images; folds = 5"),
        ([10, 2], None, "stratified", "toy: class 'b' has 2 images; train, val, test need 3"),
        ([5, 3], None, "kfold2", "toy: class 'b' has 3 images; folds = 2 with a val part need 4"),
        ([6, 6], [0] * 4 + [1, 2] + list(range(3, 9)), "kfold", "toy: class 'a' has 6 images in 3 groups that can leave "
         "train; folds = 5 \\(a group's images stay in one part\\); its largest group, that of img0.png, holds 4 of its images"),
        ([6, 3], list(range(6)) + [6, 6, 6], "stratified", "class 'b' has 3 images in 1 groups that can leave train; "
         "train, val, test need 3 .*that of img6.png, holds 3 of its images"),
    ],
)  # fmt: skip
def test_too_few_images_or_groups(per_class, groups, kind, message) -> None:
    folds = 2 if kind == "kfold2" else 5
    with pytest.raises(ValueError, match=message):
        make_splits(dataset(per_class, groups), kind.rstrip("2"), FRACTIONS, folds=folds)


def test_mixed_groups_that_leave_a_part_without_a_class() -> None:
    """Every class has 3 groups, but groups mixing classes leave b out of test at this seed."""
    per_group = [[0, 0, 2], [2, 1, 0], [0, 1, 2], [0, 0, 2], [2, 0, 1], [1, 1, 0]]  # images of a, b, c per group
    labels = [k for row in per_group for k, n in enumerate(row) for _ in range(n)]
    groups = [g for g, row in enumerate(per_group) for _ in range(sum(row))]
    data = ImageData(noise(len(labels)), torch.tensor(labels), ("a", "b", "c"), groups=torch.tensor(groups), name="mixed")
    with pytest.raises(ValueError, match="mixed \\(stratified\\): class 'b' got no test images: its 3 images lie in 3 "
                       "groups, which also hold other classes .*try another split seed"):  # fmt: skip
        make_splits(data, "stratified", {"train": 0.6, "val": 0.2, "test": 0.2}, seed=0)


@pytest.mark.parametrize(
    ("settings", "error", "message"),
    [
        ({"split": "random"}, ValueError, "unknown split 'random'; choose one of official, stratified, kfold"),
        ({"fractions": {"train": 0.8, "validation": 0.2}}, KeyError, "unknown parts \\['validation'\\]; the parts are train, val, test"),
        ({"fractions": {"train": 0.7, "val": 0.1, "test": 0.3}}, ValueError, "train 0.7, val 0.1, test 0.3 sum to 1.1; they must sum to 1"),
        ({"fractions": {"train": 1.0, "test": 0}}, ValueError, "train 1, val 0, test 0: train and test must be above 0"),
        ({"fractions": {"train": "0.7", "test": 0.3}}, ValueError, "split fraction 'train' must be a number in 0..1, got '0.7'"),
        ({"split": "kfold", "folds": 1}, ValueError, "folds must be an integer >= 2, got 1"),
        ({"split": "kfold", "repeats": 0}, ValueError, "repeats must be an integer >= 1, got 0"),
        ({"seed": -1}, ValueError, "seed must be a non-negative integer, got -1"),
        ({"duplicate_threshold": 64}, ValueError, "threshold must be in 0..63 bits"),
    ],
)  # fmt: skip
def test_bad_settings(settings, error, message) -> None:
    with pytest.raises(error, match=message):
        make_splits(dataset([10, 10]), **({"split": "stratified"} | settings))


def test_unlabelled_only_data_cannot_be_split() -> None:
    with pytest.raises(ValueError, match="pool has no labelled images; val and test parts need labels"):
        make_splits(dataset([4], name="pool").unlabeled(), "stratified")


def test_pbc_rgb_kfold(bloodcells: ImageData) -> None:
    """8 classes x 20 real 64 x 64 RGB images, 5 folds x 2 repeats."""
    data = bloodcells.subset(label_budget(bloodcells, per_class=20, seed=0).labelled)
    splits = make_splits(data, "kfold", FRACTIONS, folds=5, repeats=2, seed=0)
    tests = np.stack([s.data.split == "test" for s in splits]).reshape(2, 5, -1)
    assert (tests.sum(1) == 1).all()
    groups = split_groups(data, threshold=4, duplicates=True)
    for split in splits:
        assert np.array_equal(split.groups, groups)
        assert_groups_kept(split, groups)
        assert len(audit_duplicates(split.data, threshold=4)) == 0
        assert min(min(row) for row in counts(split).values()) >= 1

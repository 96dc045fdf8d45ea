"""Both protocols on the real data: what learners may see, what they are scored on, hashes."""

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from medfew.data import EpisodeSet, ImageData
from medfew.evaluation.protocols import EpisodesProtocol, LabelBudgetProtocol, Setting

SPLIT = {"base": ["basophil", "erythroblast", "platelet"], "val": ["eosinophil", "ig"], "novel": ["lymphocyte", "monocyte", "neutrophil"]}


def test_label_budget_contexts_and_tasks(breastmnist, tmp_path: Path):
    protocol = LabelBudgetProtocol(breastmnist, per_class=[5], fractions=[0.1])
    assert [s.name for s in protocol.settings()] == ["per_class=5", "fraction=0.1"]
    five = Setting("per_class", 5)
    context = protocol.context(five, seed=0, workdir=tmp_path)
    assert context.workdir == tmp_path / "per_class=5" / "seed0"
    assert context.base.class_counts().tolist() == [5, 5]
    assert len(context.val) == 78 and len(context.unlabeled) == 546  # the whole train split, labels hidden
    assert (context.unlabeled.labels == -1).all()
    (task,) = protocol.tasks(five, seed=0)
    assert task.support.shape == (10, 1, 28, 28) and task.support.dtype == torch.float32
    assert task.query.shape == (156, 1, 28, 28) and len(task.val[0]) == 78
    assert task.classes == breastmnist.class_names
    # 10 % of each class: round(0.1 * 147) + round(0.1 * 399) labelled images
    assert len(protocol.context(Setting("fraction", 0.1), 0, tmp_path).base) == 15 + 40


def test_label_budget_counts_the_one_label_per_class_minimum():
    labels = torch.tensor([0] * 30 + [1] * 4 + [0, 1])
    split = np.array(["train"] * 34 + ["test"] * 2)
    data = ImageData(torch.zeros(36, 1, 4, 4, dtype=torch.uint8), labels, ("a", "b"), split=split)
    protocol = LabelBudgetProtocol(data, per_class=[2], fractions=[0.01, 0.1, 1.0])
    # 0.1: round(3.0) + round(0.4) raised to 1; 0.01: one each
    assert [protocol.budget(s) for s in protocol.settings()] == [(4, 34), (2, 34), (4, 34), (34, 34)]


@pytest.mark.parametrize(
    "budget, asked",
    [
        ({"per_class": [1]}, "protocol.per_class = 1: lower protocol.per_class or give 'rare' more train images"),
        ({"fractions": [0.5]}, "protocol.fractions = 0.5 labels at least 1: give 'rare' train images"),
    ],
)
def test_a_class_without_train_images_is_refused_naming_the_part_and_the_key(budget, asked):
    labels = torch.tensor([0] * 4 + [1] * 4 + [0, 1, 2])
    split = np.array(["train"] * 8 + ["test"] * 3)
    data = ImageData(torch.zeros(11, 1, 4, 4, dtype=torch.uint8), labels, ("a", "b", "rare"), split=split, name="toy")
    with pytest.raises(ValueError, match=re.escape(f"toy: class 'rare' has 0 images in train (1 in all parts); {asked}")):
        LabelBudgetProtocol(data, **budget)


def test_one_class_is_refused_by_both_protocols(bloodcells):
    one = bloodcells.select_classes(["basophil"])
    with pytest.raises(ValueError, match=r"has 1 class \(basophil\); classifying needs 2 or more"):
        LabelBudgetProtocol(replace(one, split=np.where(np.arange(len(one)) % 2, "train", "test")), fractions=[1.0])
    split = {"base": ["basophil", "eosinophil"], "val": [], "novel": ["lymphocyte"]}  # n_way: every novel class
    with pytest.raises(ValueError, match=r"data.class_split gives .* 1 novel class \(lymphocyte\); novel episodes need 2 classes or more"):
        EpisodesProtocol(bloodcells, split, shots=[1], n_query=5, n_episodes=2)
    split = {"base": ["basophil", "eosinophil"], "val": ["ig"], "novel": ["lymphocyte", "monocyte"]}  # val picks checkpoints
    with pytest.raises(ValueError, match=r"1 val class \(ig\); val episodes need 2 classes or more, .*: add a class or move it to base"):
        EpisodesProtocol(bloodcells, split, shots=[1], n_query=5, n_episodes=2)


def test_label_budget_hash_identifies_the_labelled_subset(breastmnist, tmp_path: Path):
    protocol = LabelBudgetProtocol(breastmnist, per_class=[5])
    five = Setting("per_class", 5)
    assert protocol.split_hash(five, 0) == LabelBudgetProtocol(breastmnist, per_class=[5]).split_hash(five, 0)
    assert protocol.split_hash(five, 0) != protocol.split_hash(five, 1)
    rest = LabelBudgetProtocol(breastmnist, per_class=[5], unlabeled_pool="rest")
    assert len(rest.context(five, 0, tmp_path).unlabeled) == 546 - 10


def test_label_budget_needs_a_test_split(bloodcells):
    with pytest.raises(ValueError, match="needs train and test images; .* has splits none. Set data.split=stratified .* or data.split=kfold"):
        LabelBudgetProtocol(bloodcells, per_class=[5])


def test_episodes_protocol_keeps_novel_classes_unseen(bloodcells, tmp_path: Path):
    protocol = EpisodesProtocol(bloodcells, SPLIT, shots=[1, 5], n_query=5, n_episodes=3)
    context = protocol.context(Setting("shots", 1), seed=2, workdir=tmp_path)
    assert context.workdir == tmp_path / "seed2"
    assert context.base.class_names == tuple(SPLIT["base"]) and context.val.class_names == tuple(SPLIT["val"])
    assert len(context.unlabeled) == 5 * 250  # base + val images only
    tasks = list(protocol.tasks(Setting("shots", 5), seed=0))
    assert len(tasks) == 3 and [t.episode for t in tasks] == [0, 1, 2]
    assert tasks[0].support.shape == (15, 3, 64, 64) and tasks[0].query.shape == (15, 3, 64, 64)
    assert set(tasks[0].classes) == set(SPLIT["novel"])
    novel = bloodcells.select_classes(SPLIT["novel"])
    expected = EpisodeSet.draw(novel, 3, 5, 5, 3, seed=0).hash
    assert protocol.split_hash(Setting("shots", 5), seed=0) == protocol.split_hash(Setting("shots", 5), seed=7) == expected
    assert protocol.budget(Setting("shots", 5)) is None  # the shots are the count: no header line


def test_novel_images_held_out_unlabeled_join_the_pool_and_never_an_episode(bloodcells, tmp_path: Path):
    protocol = EpisodesProtocol(bloodcells, SPLIT, shots=[5], n_query=15, n_episodes=20, novel_unlabeled=0.2)
    unlabeled = protocol.context(Setting("shots", 5), seed=0, workdir=tmp_path).unlabeled
    assert len(unlabeled) == 5 * 250 + 3 * 50 and (unlabeled.labels == -1).all()  # base + val + 20 % of each novel class
    held = {image.numpy().tobytes() for image in unlabeled.images[-150:]}
    shown = [image for task in protocol.tasks(Setting("shots", 5), seed=0) for image in (*task.support, *task.query)]
    assert len(shown) == 20 * 3 * 20 and not any((image * 255).round().byte().numpy().tobytes() in held for image in shown)
    every_image = EpisodesProtocol(bloodcells, SPLIT, shots=[5], n_query=15, n_episodes=20)
    assert protocol.split_hash(Setting("shots", 5), 0) != every_image.split_hash(Setting("shots", 5), 0)
    assert "0.2 of each novel class's images (150) unlabeled" in protocol.description
    with pytest.raises(ValueError, match=r"protocol.novel_unlabeled is a share .* in \[0, 1\), got 1"):
        EpisodesProtocol(bloodcells, SPLIT, novel_unlabeled=1)


def test_novel_images_are_held_out_by_patient():
    patients = torch.arange(60).repeat_interleave(3)  # 60 patients x 3 images; 20 patients per class
    labels = patients // 20
    images = torch.randint(0, 256, (180, 1, 16, 16), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    data = ImageData(images, labels, ("base", "a", "b"), groups=patients, name="scans")
    protocol = EpisodesProtocol(data, {"base": ["base"], "val": [], "novel": ["a", "b"]}, shots=[1], n_query=2, n_episodes=2, novel_unlabeled=0.25)
    held, shown = set(protocol.novel_pool.groups.tolist()), set(protocol.novel.groups.tolist())
    assert len(held) == 10 and len(shown) == 30 and not held & shown  # 25 % of each class's patients, whole


def test_episodes_protocol_needs_a_class_split(breastmnist):
    with pytest.raises(ValueError, match="needs data.class_split"):
        EpisodesProtocol(breastmnist, None)


def test_episodes_keep_a_patient_out_of_the_query_when_in_the_support(bloodcells):
    patients = replace(bloodcells, groups=torch.arange(len(bloodcells)) // 4)  # 4 images per patient, sorted by class
    protocol = EpisodesProtocol(patients, SPLIT, shots=[5], n_query=15, n_episodes=20)
    novel_groups = protocol.novel.groups
    for episode in protocol.episode_sets[5].indices:
        assert not set(novel_groups[episode.support.flatten()].tolist()) & set(novel_groups[episode.query.flatten()].tolist())
    assert "; novel classes: 750 images in 188 groups (patients, near duplicates), no query shares a group with its episode's support" in protocol.description
    alone = EpisodesProtocol(bloodcells, SPLIT, shots=[5], n_query=15, n_episodes=20)
    assert protocol.split_hash(Setting("shots", 5), 0) != alone.split_hash(Setting("shots", 5), 0)
    assert alone.description.endswith("novel classes: every image is its own group: no patient ids (data.groups, a groups.csv or DICOM PatientID) and no near duplicates")


def test_an_all_images_pool_holds_test_images_without_labels_and_no_labelled_monitor(breastmnist, tmp_path: Path):
    five = Setting("per_class", 5)
    train = LabelBudgetProtocol(breastmnist, per_class=[5]).context(five, 0, tmp_path)
    assert len(train.monitor) == 78 and torch.equal(train.monitor.images, train.val.images)  # the val split scores SSL
    everything = LabelBudgetProtocol(breastmnist, per_class=[5], unlabeled_pool="all")
    context = everything.context(five, 0, tmp_path)
    assert len(context.unlabeled) == 546 + 78 + 156 and (context.unlabeled.labels == -1).all()
    assert context.monitor is None and everything.transductive and not LabelBudgetProtocol(breastmnist, per_class=[5]).transductive
    with pytest.raises(ValueError, match="protocol.unlabeled_pool must be one of train, rest, all, got 'test'"):
        LabelBudgetProtocol(breastmnist, per_class=[5], unlabeled_pool="test")

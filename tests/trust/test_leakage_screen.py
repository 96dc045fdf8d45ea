"""The comparison run's leakage option: warn about, or exclude, val / test images that duplicate
train images, recorded in leakage.json; on Brain MRI it finds the known near-duplicate scans."""

import csv
import dataclasses
import json
import logging

import numpy as np
import pytest
import torch

from medfew.data import ImageData
from medfew.evaluation import compare
from medfew.data.dataset import UNLABELED
from medfew.evaluation.leakage import leakage_note, screen_leakage, warn_label_conflicts


@pytest.fixture
def leaky() -> ImageData:
    """6 train images; test = 2 exact copies, 1 copy with +-2 grey-level noise, 3 unrelated images."""
    generator = torch.Generator().manual_seed(0)
    train = torch.randint(0, 256, (6, 1, 32, 32), dtype=torch.uint8, generator=generator)
    train = torch.nn.functional.interpolate(train.float(), scale_factor=4, mode="bilinear").to(torch.uint8)  # smooth 128 px
    noisy = (train[2].int() + torch.randint(-2, 3, train[2].shape, generator=generator)).clamp(0, 255).to(torch.uint8)
    unrelated = torch.nn.functional.interpolate(
        torch.randint(0, 256, (3, 1, 32, 32), generator=generator).float(), scale_factor=4, mode="bilinear"
    ).to(torch.uint8)
    images = torch.cat([train, train[:2], noisy[None], unrelated])
    split = np.array(["train"] * 6 + ["test"] * 6)
    labels = torch.tensor([0, 1] * 6)
    filenames = np.array([f"img{i}.png" for i in range(12)])
    return ImageData(images, labels, ("a", "b"), split=split, name="leaky", filenames=filenames)


def test_warn_records_and_keeps(leaky, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        kept, record = screen_leakage(leaky, "warn", 4)
    assert len(kept) == 12
    assert record["flagged"] == 3 and not record["excluded"]
    assert [image["index"] for image in record["images"]] == [6, 7, 8]
    assert record["images"][2] == {"index": 8, "split": "test", "file": "img8.png"}
    assert record["counts"]["train-test/exact_pairs"] == 2 and record["counts"]["train-test/near_pairs"] == 1
    assert "leaky: 3 val/test images duplicate train images (exact or pHash within 4 bits), kept: scores may be optimistic" in caplog.text


def test_exclude_drops_only_the_duplicates(leaky):
    kept, record = screen_leakage(leaky, "exclude", 4)
    assert kept.filenames.tolist() == [f"img{i}.png" for i in (0, 1, 2, 3, 4, 5, 9, 10, 11)]
    assert record["excluded"]
    exact_only, _ = screen_leakage(leaky, "exclude", None)
    assert len(exact_only) == 10  # the noisy copy is not pixel-identical


def test_exclude_that_empties_a_split_says_so(leaky):
    only_copies = leaky.subset(list(range(9)))  # test = the 3 duplicates
    with pytest.raises(ValueError, match="leakage.check=exclude removed every test image of leaky: each duplicates a train image"):
        screen_leakage(only_copies, "exclude", 4)


def test_identical_images_with_different_labels_are_named(leaky, caplog):
    labels = leaky.labels.clone()
    labels[7] = 0  # the copy of image 1 (label b) now says a
    labels[6] = UNLABELED  # a copy without a label conflicts with nothing
    split = leaky.split.copy()
    split[6] = "train"  # val / test images need labels
    relabelled = ImageData(leaky.images, labels, leaky.class_names, split=split, name="leaky")
    with caplog.at_level(logging.WARNING):
        warn_label_conflicts(relabelled)
        warn_label_conflicts(leaky)  # its copies keep their labels
    assert [r.getMessage().split(": ")[1] for r in caplog.records] == [
        "1 set of pixel-identical images with different labels"
    ]
    assert "train image 1 (b) = test image 7 (a). Each copy is scored against its own label" in caplog.text


def test_summary_note_adds_the_folds(leaky):
    record = screen_leakage(leaky, "warn", 4)[1]
    clean = screen_leakage(leaky.subset(torch.arange(6)), "warn", 4)[1]
    assert leakage_note({"all": clean}) == ""
    assert leakage_note({"all": record}) == (
        "3 val/test images duplicate train images (exact or pHash within 4 bits), kept: scores may be optimistic "
        "(leakage.check=exclude drops them); see leakage.json"
    )
    assert leakage_note({"fold0": record, "fold1": record, "fold2": clean}).startswith("6 val/test images over the folds")


def test_a_patient_in_both_parts_of_the_data_own_split_is_a_leak(leaky, caplog):
    groups = torch.arange(12)
    groups[10] = 3  # test image 10 is a scan of train image 3's patient
    groups[11] = 9  # two test scans of one patient: no leak
    grouped = dataclasses.replace(leaky, groups=groups)
    with caplog.at_level(logging.WARNING):
        _, record = screen_leakage(grouped, "warn", 4)
    assert (record["duplicates"], record["shared_groups"], record["flagged"]) == (3, 1, 4)
    assert [image["index"] for image in record["images"]] == [6, 7, 8, 10]
    assert (
        "leaky: 3 val/test images duplicate train images (exact or pHash within 4 bits); 1 val/test images share a group "
        "(patient) with train images (img10.png (a) shares its group with img3.png (b)), kept: scores may be optimistic"
    ) in caplog.text
    excluded, _ = screen_leakage(grouped, "exclude", 4)
    assert excluded.filenames.tolist() == [f"img{i}.png" for i in (0, 1, 2, 3, 4, 5, 9, 11)]
    assert leakage_note({"fold0": record, "fold1": record}) == (
        "6 val/test images over the folds duplicate train images (exact or pHash within 4 bits); 2 val/test images over "
        "the folds share a group (patient) with train images, kept: scores may be optimistic (leakage.check=exclude "
        "drops them); see leakage.json"
    )


def test_off_unknown_and_unsplit_data(leaky, tiny_data):
    assert screen_leakage(leaky, "off", 4)[0] is leaky
    with pytest.raises(ValueError, match="leakage.check 'drop' is not one of warn, exclude, off"):
        screen_leakage(leaky, "drop", 4)
    kept, record = screen_leakage(tiny_data, "exclude", 4)
    assert kept is tiny_data and record["skipped"] == "tiny has splits none; nothing to screen against train"


def test_comparison_on_brain_mri_excludes_near_duplicate_test_scans(brain_mri, compose_root, tmp_path):
    overrides = [
        "data=brain_mri", "leakage.check=exclude", "protocol.per_class=[5]", "protocol.fractions=[]", "seeds=[0]",
        "learners=[prototype_pixels]", "report.reference=prototype_pixels", "report.n_resamples=100",
    ]  # fmt: skip
    compare(compose_root("config", tmp_path, overrides))
    record = json.loads((tmp_path / "leakage.json").read_text())
    # 1622 train-test pairs within 4 bits (none pixel-identical) involve 496 of the 1092 test scans
    assert record["counts"]["train-test/near_pairs"] == 1622 and record["counts"]["exact_pairs"] == 0
    assert record["flagged"] == 496 and record["excluded"]
    summary = (tmp_path / "summary.md").read_text()
    assert "- leakage: 496 val/test images duplicate train images (exact or pHash within 4 bits), excluded" in summary
    with (tmp_path / "results.csv").open(newline="") as f:
        (row,) = csv.DictReader(f)
    assert int(row["n_query"]) == 1092 - 496

"""Leakage audit: exact and near duplicates across splits, on synthetic grey data, real RGB cells and the real Brain MRI."""

import csv
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from medfew.data import ImageData, audit_duplicates, duplicate_indices
from medfew.data.audit import perceptual_hashes


REPO = Path(__file__).resolve().parents[2]


def smooth_images(n: int, seed: int) -> torch.Tensor:
    """(n, 1, 32, 32) uint8 images upsampled from random 4 x 4 grids (distinct perceptual hashes)."""
    coarse = torch.rand(n, 1, 4, 4, generator=torch.Generator().manual_seed(seed)) * 255
    return F.interpolate(coarse, size=32, mode="bilinear", align_corners=False).round().to(torch.uint8)


@pytest.fixture
def leaky() -> ImageData:
    """train: 0..3; test: 4 = copy of 0, 5 = 1 brightened by 3, 6 new; val: 7 = copy of 4 (and so of 0)."""
    base = smooth_images(5, seed=0)
    brighter = (base[1:2].int() + 3).clamp(max=255).to(torch.uint8)
    images = torch.cat([base[:4], base[0:1], brighter, base[4:5], base[0:1]])
    split = np.array(["train"] * 4 + ["test"] * 3 + ["val"])
    names = np.array([f"img{i}.png" for i in range(8)])
    return ImageData(images, torch.zeros(8, dtype=torch.long), ("x",), split=split, name="leaky", filenames=names)


def test_exact_and_near_pairs(leaky: ImageData) -> None:
    report = audit_duplicates(leaky, threshold=4)
    pairs = list(zip(report.first.tolist(), report.second.tolist(), report.exact.tolist()))
    # train-val, train-test, val-test in that order; the earlier split first
    assert pairs == [(0, 7, True), (0, 4, True), (1, 5, False), (7, 4, True)]
    assert report.distance[:2].tolist() == [0, 0] and report.distance[2] <= 4
    assert report.splits.tolist() == [["train", "val"], ["train", "test"], ["train", "test"], ["val", "test"]]
    assert report.filenames[2].tolist() == ["img1.png", "img5.png"]
    assert report.counts() == {
        "exact_pairs": 3, "near_pairs": 1,
        "train-test/exact_pairs": 1, "train-test/near_pairs": 1,
        "train-val/exact_pairs": 1, "train-val/near_pairs": 0,
        "val-test/exact_pairs": 1, "val-test/near_pairs": 0,
        "train/images_involved": 2, "val/images_involved": 1, "test/images_involved": 2,
    }  # fmt: skip
    assert report.rows()[2] | {"distance": 0} == {
        "kind": "near", "distance": 0, "first": 1, "second": 5, "first_split": "train",
        "second_split": "test", "first_file": "img1.png", "second_file": "img5.png",
    }  # fmt: skip


def test_exact_only(leaky: ImageData) -> None:
    report = audit_duplicates(leaky, threshold=None)
    assert report.exact.all() and len(report) == 3


def test_duplicate_indices_to_drop(leaky: ImageData) -> None:
    assert duplicate_indices(leaky, "train").tolist() == [4, 5, 7]
    assert duplicate_indices(leaky, "train", threshold=None).tolist() == [4, 7]
    assert duplicate_indices(leaky, "test").tolist() == [0, 1, 7]
    with pytest.raises(KeyError, match="leaky has no split 'holdout'"):
        duplicate_indices(leaky, "holdout")


def test_without_splits_the_duplicates_within_are_listed(leaky: ImageData) -> None:
    data = dataclasses.replace(leaky, split=None)  # 4 and 7 copy 0, 5 is 1 brightened
    report = audit_duplicates(data, threshold=4)
    assert list(zip(report.first.tolist(), report.second.tolist(), report.exact.tolist())) == [(0, 4, True), (0, 7, True), (1, 5, False)]
    assert report.splits.tolist() == [["all", "all"]] * 3 and report.distance[:2].tolist() == [0, 0]
    assert report.counts()["all/images_involved"] == 5
    assert len(audit_duplicates(data, threshold=None)) == 2
    one_split = audit_duplicates(dataclasses.replace(leaky, split=np.array(["train"] * 8)), threshold=4)
    assert torch.equal(one_split.first, report.first) and set(one_split.splits.ravel()) == {"train"}
    with pytest.raises(ValueError, match="threshold must be in 0..63"):
        audit_duplicates(data, threshold=64)


def test_the_audit_command_on_a_folder_without_splits_names_a_label_conflict(tmp_path: Path) -> None:
    images = smooth_images(6, seed=3).numpy()[:, 0]
    for i, image in enumerate(images):
        (tmp_path / "scans" / f"class{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(tmp_path / "scans" / f"class{i % 2}" / f"scan{i}.png")
    Image.fromarray(images[0]).save(tmp_path / "scans" / "class1" / "copy_of_scan0.png")
    result = subprocess.run(
        [sys.executable, "experiments/audit.py", "data=image_folder", f"data.source.path={tmp_path / 'scans'}",
         "data.image_size=32", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "scans: no splits to leak across; the duplicates within it are listed" in result.stdout
    assert '"exact_pairs": 1,\n "near_pairs": 0,' in result.stdout and '"label_conflicts": 1,\n "images": 7' in result.stdout
    with open(tmp_path / "run" / "duplicates.csv") as f:
        (row,) = csv.DictReader(f)
    assert (row["first_file"], row["second_file"], row["first_label"], row["second_label"]) == (
        "class0/scan0.png", "class1/copy_of_scan0.png", "class0", "class1"
    )


def test_brain_mri_cli(tmp_path: Path, shared_file) -> None:
    """The audit command on the real Brain MRI: no exact copies, 1622 near pairs at 4 bits."""
    data_root = shared_file("brain_tumor_mri_64.npz").parent
    result = subprocess.run(
        [sys.executable, "experiments/audit.py", "data=brain_mri", "threshold=4",
         f"csv={tmp_path / 'pairs.csv'}", f"hydra.run.dir={tmp_path}"],
        cwd=REPO, env=os.environ | {"MEDFEW_DATA": str(data_root)}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert '"exact_pairs": 0' in result.stdout and '"near_pairs": 1622' in result.stdout
    assert '"test/images_involved": 496' in result.stdout
    with open(tmp_path / "pairs.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1622 and {r["first_split"] for r in rows} == {"train"}
    assert sum(r["first_label"] != r["second_label"] for r in rows) == 3


def test_rgb_images(bloodcells: ImageData) -> None:
    """Real 64 x 64 RGB cells: train 0..3; test 4 = copy of 0, 5 = 1 brightened by 3, 6 new."""
    images = bloodcells.images[[0, 1, 2, 3, 0, 1, 4]].clone()
    images[5] = (images[5].int() + 3).clamp(max=255).to(torch.uint8)
    split = np.array(["train"] * 4 + ["test"] * 3)
    data = ImageData(images, torch.zeros(7, dtype=torch.long), ("x",), split=split, name="cells")
    report = audit_duplicates(data, threshold=4)
    assert list(zip(report.first.tolist(), report.second.tolist(), report.exact.tolist())) == [(0, 4, True), (1, 5, False)]


def test_rgb_hash_is_the_grey_hash() -> None:
    """Pillow turns R = G = B into that grey value, so a grey image and its RGB copy hash alike."""
    grey = smooth_images(3, seed=1)
    assert torch.equal(perceptual_hashes(grey.expand(-1, 3, -1, -1)), perceptual_hashes(grey))
    assert perceptual_hashes(grey).shape == (3, 64)


def test_hashes_follow_the_pixels_not_the_tensor() -> None:
    """pHashes are kept by image content: a subset gets its rows' bits, an image changed in place its new ones."""
    images = smooth_images(4, seed=2)
    before = perceptual_hashes(images)
    assert torch.equal(perceptual_hashes(images[[2, 0]]), before[[2, 0]])
    images[0] = 255 - images[0]
    after = perceptual_hashes(images)
    assert (after[0] != before[0]).sum() > 32 and torch.equal(after[1:], before[1:])

"""ImageData validation, the resize / channel policy and concat."""

from pathlib import Path

import numpy as np
import pytest
import torch

from medfew.data import ImageData, concat, load_labelled_npz, preprocess
from medfew.data.preprocess import convert_channels


def test_label_outside_class_names_is_named(tmp_path: Path) -> None:
    images = torch.zeros(3, 1, 4, 4, dtype=torch.uint8)
    with pytest.raises(ValueError, match="label value 5 is outside class_names \\(0..1: a, b\\)"):
        ImageData(images, torch.tensor([0, 5, 1]), ("a", "b"), name="scans")
    path = tmp_path / "bad.npz"
    np.savez(path, images=np.zeros((2, 4, 4), np.uint8), labels=np.array([0, 2]), class_names=np.array(["x", "y"]))
    with pytest.raises(ValueError, match="bad.npz: label value 2 is outside class_names"):
        load_labelled_npz(str(path))


def test_npz_missing_keys_and_wrong_dtype(tmp_path: Path) -> None:
    path = tmp_path / "partial.npz"
    np.savez(path, images=np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(KeyError, match="missing keys \\['labels', 'class_names'\\]"):
        load_labelled_npz(str(path))
    np.savez(path, images=np.zeros((2, 4, 4), np.float32), labels=np.array([0, 1]), class_names=np.array(["x", "y"]))
    with pytest.raises(TypeError, match="images are float32; expected uint8"):
        load_labelled_npz(str(path))


def test_shape_checks() -> None:
    with pytest.raises(ValueError, match="4 images but 3 labels"):
        ImageData(torch.zeros(4, 1, 2, 2, dtype=torch.uint8), torch.zeros(3, dtype=torch.long), ("a",))
    with pytest.raises(ValueError, match="2 channels; expected 1 or 3"):
        ImageData(torch.zeros(4, 2, 2, 2, dtype=torch.uint8), torch.zeros(4, dtype=torch.long), ("a",))
    with pytest.raises(ValueError, match="must be a uint8"):
        ImageData(torch.zeros(4, 1, 2, 2), torch.zeros(4, dtype=torch.long), ("a",))


def test_resize_and_channel_conversion(breastmnist: ImageData) -> None:
    big = preprocess(breastmnist.subset(range(4)), image_size=64, channels=3)
    assert big.images.shape == (4, 3, 64, 64) and big.images.dtype == torch.uint8
    assert torch.equal(big.images[:, 0], big.images[:, 2])
    flat = ImageData(torch.full((1, 1, 28, 28), 77, dtype=torch.uint8), torch.tensor([0]), ("a",))
    assert preprocess(flat, image_size=64).images.unique().tolist() == [77]  # resizing keeps a flat image flat
    rgb = torch.tensor([200, 100, 50], dtype=torch.uint8).view(1, 3, 1, 1)
    assert convert_channels(rgb, 1).item() == round(0.299 * 200 + 0.587 * 100 + 0.114 * 50)
    with pytest.raises(ValueError, match="channels must be 1 or 3, got 2"):
        convert_channels(rgb, 2)


def test_concat_unions_classes_by_name(tiny_data: ImageData) -> None:
    left = tiny_data.select_classes(["b", "a"])
    right = tiny_data.select_classes(["c", "a"])
    both = concat([left, right])
    assert both.class_names == ("b", "a", "c")
    assert both.class_counts().tolist() == [10, 20, 10]
    unlabeled = concat([left, right.unlabeled()])
    assert (unlabeled.labels == -1).sum() == 20

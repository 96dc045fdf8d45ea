"""ImageData validation, strict npz / MedMNIST reading, the resize / channel policy and concat."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from medfew.data import UNLABELED, ImageData, concat, load_labelled_npz, load_medmnist, preprocess
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


def test_concat_keeps_the_patients_of_each_part_apart(tiny_data: ImageData) -> None:
    """Patient 0 of one dataset is not patient 0 of another; a part without patient ids gives each image its own group."""
    first = dataclasses.replace(tiny_data.subset(range(3)), groups=torch.tensor([0, 0, 1]))
    second = dataclasses.replace(tiny_data.subset(range(3, 5)), groups=torch.tensor([0, 1]))
    assert concat([first, second]).groups.tolist() == [0, 0, 1, 2, 3]
    assert concat([first, tiny_data.subset(range(5, 7)), second]).groups.tolist() == [0, 0, 1, 2, 3, 4, 5]
    assert concat([tiny_data.subset(range(2)), tiny_data.subset(range(2, 4))]).groups is None


def test_split_values_are_checked() -> None:
    images, labels = torch.zeros(5, 1, 2, 2, dtype=torch.uint8), torch.tensor([0, 0, 1, 1, UNLABELED])
    split = np.array(["train", "validation", "validation", "Test", "train"])
    with pytest.raises(ValueError, match="scans: unknown split values 'Test' \\(1 images\\), 'validation' \\(2 images\\); "
                       "valid splits are train, val, test"):  # fmt: skip
        ImageData(images, labels, ("a", "b"), split=split, name="scans")
    split = np.array(["train", "val", "test", "train", "test"])
    with pytest.raises(ValueError, match="scans: 1 unlabelled images \\(label -1\\) in val / test \\(first at index 4, "
                       "split 'test'\\); they cannot be scored"):  # fmt: skip
        ImageData(images, labels, ("a", "b"), split=split, name="scans")
    split[4] = "train"
    data = ImageData(images, labels, ("a", "b"), split=split, name="scans")
    assert data.unlabeled().split is None  # a pretraining pool has no parts to score


def test_labels_below_minus_one_and_repeated_classes() -> None:
    images = torch.zeros(4, 1, 2, 2, dtype=torch.uint8)
    with pytest.raises(ValueError, match="scans: 2 labels are below -1 \\(first at index 1: -2\\); a label is a class "
                       "index 0..1 or -1 \\(UNLABELED\\)"):  # fmt: skip
        ImageData(images, torch.tensor([0, -2, -1, -5]), ("a", "b"), name="scans")
    with pytest.raises(ValueError, match="scans: class names \\['a'\\] appear more than once"):
        ImageData(images, torch.zeros(4, dtype=torch.long), ("a", "b", "a"), name="scans")
    with pytest.raises(ValueError, match="scans: images are \\(0, 2\\) pixels; expected at least 1 x 1"):
        ImageData(torch.zeros(4, 1, 0, 2, dtype=torch.uint8), torch.zeros(4, dtype=torch.long), ("a",), name="scans")


def save_npz(path: Path, labels: list[int] | np.ndarray = (0, 1, 1), **extra: np.ndarray) -> Path:
    """A labelled npz of len(labels) 4 x 4 grey images and classes x, y."""
    images = np.arange(len(labels) * 16, dtype=np.uint8).reshape(-1, 4, 4)
    np.savez(path, images=images, labels=np.asarray(labels), class_names=np.array(["x", "y"]), **extra)
    return path


def test_npz_groups_become_codes(tmp_path: Path) -> None:
    path = save_npz(tmp_path / "g.npz", groups=np.array(["p7", "p10", "p7"]))
    assert load_labelled_npz(str(path)).groups.tolist() == [1, 0, 1]  # sorted ids: p10, p7
    save_npz(path, groups=np.array([3.5, np.nan, np.nan]))
    with pytest.raises(ValueError, match="g.npz: groups has 2 NaN values \\(first at index 1\\)"):
        load_labelled_npz(str(path))
    save_npz(path, groups=np.array([1, 2]))
    with pytest.raises(ValueError, match="g.npz: 3 images but 2 groups"):
        load_labelled_npz(str(path))


@pytest.mark.parametrize(
    ("labels", "extra", "error", "message"),
    [
        ([0, -1, -3], {}, ValueError, "bad.npz: labels has 2 negative labels \\(first at index 1: -1\\)"),
        (np.array([0.0, 1.0, 1.0]), {}, TypeError, "bad.npz: labels are float64; expected integer class indices"),
        (np.zeros((3, 2), np.int64), {}, ValueError, "bad.npz: labels has shape \\(3, 2\\); expected N or N x 1"),
        ([0, 1, 1], {"class_names": np.array([["x", "y"]])}, ValueError, "bad.npz: class_names has shape \\(1, 2\\)"),
        ([0, 1, 1], {"split": np.array(["train", "valid", "test"])}, ValueError, "bad.npz: unknown split values 'valid'"),
        ([0, 1, 1], {"split": np.array(["train", "val", "test"], dtype=object)}, ValueError,
         "bad.npz: cannot read array 'split': ValueError: Object arrays cannot be loaded"),
    ],
)  # fmt: skip
def test_npz_bad_arrays_are_named(tmp_path: Path, labels, extra, error, message) -> None:
    path = tmp_path / "bad.npz"
    images = np.zeros((3, 4, 4), np.uint8)
    np.savez(path, **({"images": images, "labels": np.asarray(labels), "class_names": np.array(["x", "y"])} | extra))
    with pytest.raises(error, match=message):
        load_labelled_npz(str(path))


@pytest.mark.parametrize("loader", ["npz", "medmnist"])
def test_not_an_npz_file(tmp_path: Path, loader: str) -> None:
    path = tmp_path / ("breastmnist.npz" if loader == "medmnist" else "data.npz")
    load = (lambda: load_medmnist("breastmnist", root=str(tmp_path))) if loader == "medmnist" else (lambda: load_labelled_npz(str(path)))
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=f"^{path} is empty \\(0 bytes\\); not an .npz file$"):
        load()
    path.write_text("images,labels\n1,2\n")
    with pytest.raises(ValueError, match=f"^{path} is not an npz \\(zip\\) file"):
        load()
    np.save(tmp_path / "array.npy", np.zeros(3))
    (tmp_path / "array.npy").rename(path)
    with pytest.raises(ValueError, match="is not an npz \\(zip\\) file"):
        load()


def test_medmnist_labels_and_counts_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "breastmnist.npz"
    images = {f"{s}_images": np.zeros((2, 28, 28), np.uint8) for s in ("train", "val", "test")}
    labels = {f"{s}_labels": np.zeros((2, 1), np.uint8) for s in ("train", "val", "test")}
    np.savez(path, **images, **labels | {"val_labels": np.array([[1], [-1]])})
    with pytest.raises(ValueError, match=f"{path}: val_labels has 1 negative labels \\(first at index 1: -1\\)"):
        load_medmnist("breastmnist", root=str(tmp_path))
    np.savez(path, **images, **labels | {"test_labels": np.zeros((3, 1), np.uint8)})
    with pytest.raises(ValueError, match=f"{path}: test_images has 2 images but test_labels has 3 labels"):
        load_medmnist("breastmnist", root=str(tmp_path))
    np.savez(path, **images | {"val_images": np.zeros((2, 32, 32), np.uint8)}, **labels)
    with pytest.raises(ValueError, match="image shapes \\(C x H x W\\) differ between splits: .*'val': '1 x 32 x 32'"):
        load_medmnist("breastmnist", root=str(tmp_path))
    np.savez(path, **images, **labels)
    assert load_medmnist("breastmnist", root=str(tmp_path)).split.tolist() == ["train"] * 2 + ["val"] * 2 + ["test"] * 2

"""Hostile input, generated: every loader and split either returns the right data or raises a medfew error that names the culprit.

"A medfew error" means the innermost frame of the traceback lies in medfew's own code, so no
exception escapes from inside numpy, Pillow, scikit-learn or torch.
"""

import tempfile
import traceback
from pathlib import Path

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

import medfew
from medfew.data import UNLABELED, ImageData, load_image_folder, load_labelled_npz, make_splits
from medfew.data.stratify import split_groups

MEDFEW = str(Path(medfew.__file__).parent)
ERRORS = (ValueError, KeyError, TypeError, FileNotFoundError)
SPLIT_VALUES = ("train", "val", "test")


def bounded(examples: int) -> settings:
    """``examples`` generated cases, no per-case deadline (file writes and pHash vary in time)."""
    return settings(max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_medfew_error(error: BaseException, *names: str) -> None:
    """``error`` was raised by medfew's code and its message names each of ``names``."""
    frame = traceback.extract_tb(error.__traceback__)[-1]
    assert frame.filename.startswith(MEDFEW), f"{type(error).__name__} from {frame.filename}:{frame.lineno}: {error}"
    for name in names:
        assert name in str(error), f"{name!r} not in: {error}"


# ---------------------------------------------------------------- labelled npz


@st.composite
def npz_arrays(draw) -> dict[str, np.ndarray]:
    """The arrays of a labelled npz: a valid file (random size, channels, labels, split and groups)
    or one with a corruption drawn from ``CORRUPTIONS``."""
    n, classes = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    shape = draw(st.sampled_from([(n, 2, 3), (n, 2, 3, 1), (n, 2, 3, 3)]))
    content = {
        "images": draw(arrays(np.uint8, shape)),
        "labels": draw(arrays(draw(st.sampled_from([np.int64, np.uint8, np.int32])), n, elements=st.integers(0, classes - 1))),
        "class_names": np.array(list("abc"[:classes])),
    }
    if draw(st.booleans()):  # MedMNIST style
        content["labels"] = content["labels"][:, None]
    if draw(st.booleans()):
        content["split"] = np.array(draw(st.lists(st.sampled_from(SPLIT_VALUES), min_size=n, max_size=n)))
    if draw(st.booleans()):
        elements = draw(st.sampled_from([st.integers(-5, 2), st.sampled_from(["p1", "p2"]), st.sampled_from([1.5, 2.0])]))
        content["groups"] = np.array(draw(st.lists(elements, min_size=n, max_size=n)))
    corruption = draw(st.sampled_from([None, None, None, *CORRUPTIONS]))
    return content if corruption is None else CORRUPTIONS[corruption](content, draw)


CORRUPTIONS = {
    "images not uint8": lambda c, draw: c | {"images": c["images"].astype(draw(st.sampled_from([np.int16, np.float32, np.bool_])))},
    "2 or 4 channels": lambda c, draw: c | {"images": np.zeros((len(c["labels"]), 2, 3, draw(st.sampled_from([2, 4]))), np.uint8)},
    "flat or 5-d images": lambda c, draw: c | {"images": np.zeros(draw(st.sampled_from([(len(c["labels"]),), (len(c["labels"]), 2, 2, 1, 1)])), np.uint8)},
    "no pixels": lambda c, draw: c | {"images": np.zeros(draw(st.sampled_from([(0, 2, 3), (len(c["labels"]), 0, 3)])), np.uint8)},
    "float labels": lambda c, draw: c | {"labels": c["labels"].astype(np.float64)},
    "negative label": lambda c, draw: c | {"labels": np.append(c["labels"].reshape(-1)[:-1], draw(st.integers(-3, -1)))},
    "label past the classes": lambda c, draw: c | {"labels": np.append(c["labels"].reshape(-1)[:-1], len(c["class_names"]))},
    "labels N x 2": lambda c, draw: c | {"labels": np.stack([c["labels"].reshape(-1)] * 2, axis=1)},
    "one label too many": lambda c, draw: c | {"labels": np.append(c["labels"].reshape(-1), 0)},
    "repeated class name": lambda c, draw: c | {"class_names": np.concatenate([c["class_names"], c["class_names"][:1]])},
    "unknown split value": lambda c, draw: c | {"split": np.array([draw(st.sampled_from(["validation", "", "Train"]))] * len(c["labels"]))},
    "NaN group": lambda c, draw: c | {"groups": np.array([np.nan] * len(c["labels"]))},
    "missing key": lambda c, draw: without(c, draw(st.sampled_from(["images", "labels", "class_names"]))),
}  # fmt: skip


def without(content: dict[str, np.ndarray], key: str) -> dict[str, np.ndarray]:
    return {k: v for k, v in content.items() if k != key}


def npz_is_valid(content: dict[str, np.ndarray]) -> bool:
    """What a labelled npz must be, written independently of the loader."""
    if not {"images", "labels", "class_names"} <= set(content):
        return False
    images, labels, names = content["images"], content["labels"], content["class_names"].tolist()
    shape_ok = images.ndim == 3 or images.ndim == 4 and images.shape[-1] in (1, 3)
    if images.dtype != np.uint8 or not shape_ok or 0 in images.shape[:3]:
        return False
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.dtype.kind not in "iu" or labels.shape != (len(images),) or labels.min() < 0 or labels.max() >= len(names):
        return False
    if len(set(names)) != len(names):
        return False
    if "split" in content and not set(content["split"].tolist()) <= set(SPLIT_VALUES):
        return False
    groups = content.get("groups")
    return groups is None or groups.dtype.kind != "f" or not np.isnan(groups).any()


@bounded(40)
@given(content=npz_arrays())
def test_labelled_npz(content: dict[str, np.ndarray]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "hostile.npz"
        np.savez(path, **content)
        try:
            data = load_labelled_npz(str(path))
        except ERRORS as error:
            assert_medfew_error(error, "hostile.npz")
            assert not npz_is_valid(content), f"a valid file was refused: {error}"
            return
    assert npz_is_valid(content), "an invalid file was accepted"
    images = content["images"] if content["images"].ndim == 4 else content["images"][..., None]
    assert np.array_equal(data.images.permute(0, 2, 3, 1).numpy(), images)
    assert data.labels.tolist() == content["labels"].reshape(-1).tolist()
    assert data.class_names == tuple(content["class_names"].tolist())
    if "groups" in content:  # the same partition of the images, as integer codes
        same = content["groups"][:, None] == content["groups"][None, :]
        assert np.array_equal(same, (data.groups[:, None] == data.groups[None, :]).numpy())


# ---------------------------------------------------------------- image folders

COMMON_DEFECTS = {
    "empty class folder": "is empty",
    "alpha channel": "alpha channel",
    "sizes differ": "differ in size",
    "garbage file": "corrupt or truncated",
    "groups.csv names a missing file": "not images read from",
}
SPLIT_DEFECTS = {"class only in test": "lacks", "validation folder": "a split layout holds only train/"}


@st.composite
def folders(draw) -> dict:
    """A folder to write: split layout or not, {split: {class: [grey value per image]}}, RGB, groups.csv, one defect or none."""
    split_layout = draw(st.booleans())
    classes = draw(st.lists(st.sampled_from(["benign", "malignant", "normal"]), min_size=1, max_size=3, unique=True))
    splits = ("train", "test") if split_layout else ("",)
    defects = [None, None, *COMMON_DEFECTS, *(SPLIT_DEFECTS if split_layout else ())]
    return {
        "layout": {s: {c: draw(st.lists(st.integers(0, 250), min_size=1, max_size=3)) for c in classes} for s in splits},
        "rgb": draw(st.booleans()),
        "groups_csv": draw(st.booleans()),
        "defect": draw(st.sampled_from(defects)),
    }


def save_png(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def write_folder(root: Path, spec: dict) -> list[tuple[str, int]]:
    """Write ``spec`` as 4 x 5 flat PNGs and inject its defect; return (file, grey value) per image."""
    written = []
    for split, classes in spec["layout"].items():
        for name, values in classes.items():
            for i, value in enumerate(values):
                path = root / split / name / f"{i}.png"
                save_png(path, np.full((4, 5, 3) if spec["rgb"] else (4, 5), value, np.uint8))
                written.append((path.relative_to(root).as_posix(), value))
    first, defect = root / written[0][0], spec["defect"]
    if defect == "empty class folder":
        (first.parent.parent / "zzz").mkdir()
    elif defect == "alpha channel":
        save_png(first, np.zeros((4, 5, 4), np.uint8))
    elif defect == "sizes differ":
        save_png(first.parent / "tall.png", np.zeros((6, 5, 3) if spec["rgb"] else (6, 5), np.uint8))
    elif defect == "garbage file":
        first.write_bytes(b"not a png")
    elif defect in SPLIT_DEFECTS:
        save_png(root / ("test/zebra" if defect == "class only in test" else "validation/x") / "z.png", np.zeros((4, 5), np.uint8))
    if spec["groups_csv"] or defect == "groups.csv names a missing file":
        rows = [f"{file},p{i % 2}" for i, (file, _) in enumerate(written)]
        rows += ["missing/x.png,p9"] if defect == "groups.csv names a missing file" else []
        (root / "groups.csv").write_text("file,group\n" + "\n".join(rows) + "\n")
    return written


@bounded(30)
@given(spec=folders())
def test_image_folder(spec: dict) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "scans"
        written = write_folder(root, spec)
        try:
            data = load_image_folder(root)
        except ERRORS as error:
            assert_medfew_error(error, str(root))
            expected = {**COMMON_DEFECTS, **SPLIT_DEFECTS}.get(spec["defect"])
            assert expected is not None and expected in str(error), f"{spec['defect']}: {error}"
            return
    assert spec["defect"] is None
    values = dict(written)
    assert sorted(data.filenames) == sorted(values)
    assert data.class_names == tuple(sorted(next(iter(spec["layout"].values()))))
    for i, file in enumerate(data.filenames):
        *split, class_name, _ = file.split("/")
        assert data.class_names[data.labels[i]] == class_name and (data.images[i] == values[file]).all()
        assert (data.split is None) == (not split) and (not split or data.split[i] == split[0])
    assert data.images.shape[1] == (3 if spec["rgb"] else 1)
    if spec["groups_csv"]:  # row i of groups.csv put written[i] in group p{i % 2}: codes 0 and 1
        group = {file: i % 2 for i, (file, _) in enumerate(written)}
        assert data.groups.tolist() == [group[f] for f in data.filenames]
    else:
        assert data.groups is None


# ---------------------------------------------------------------- splits


@st.composite
def datasets(draw) -> tuple[ImageData, dict]:
    """Up to 4 classes of 0..12 images (classes may be missing), optional groups, copies and unlabelled images, and split settings."""
    per_class = draw(st.lists(st.integers(0, 12), min_size=1, max_size=4))
    labels = torch.arange(len(per_class)).repeat_interleave(torch.tensor(per_class))
    n_unlabelled = draw(st.integers(0, 3))
    labels = torch.cat([labels, torch.full((n_unlabelled,), UNLABELED)])
    n = len(labels)
    images = torch.randint(0, 256, (n, draw(st.sampled_from([1, 3])), 6, 6), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(draw(st.integers(0, 1000))))  # fmt: skip
    for i, j in draw(st.lists(st.tuples(st.integers(0, max(n - 1, 0)), st.integers(0, max(n - 1, 0))), max_size=2)):
        if n:
            images[j] = images[i]  # pixel copies, grouped with their originals
    groups = None
    if draw(st.booleans()):
        groups = torch.tensor(draw(st.lists(st.integers(0, max(n // 2, 1)), min_size=n, max_size=n)), dtype=torch.long)
    data = ImageData(images, labels, tuple("abcd"[: len(per_class)]), groups=groups, name="drawn")
    val = draw(st.sampled_from([0.0, 0.1, 0.25]))
    test = draw(st.sampled_from([0.2, 0.3]))
    split_settings = {
        "split": draw(st.sampled_from(["stratified", "kfold"])),
        "fractions": {"train": round(1 - val - test, 10), "val": val, "test": test},
        "folds": draw(st.integers(2, 4)),
        "repeats": draw(st.integers(1, 2)),
        "seed": draw(st.integers(0, 3)),
    }
    return data, split_settings


@bounded(60)
@given(drawn=datasets())
def test_splits(drawn: tuple[ImageData, dict]) -> None:
    data, split_settings = drawn
    try:
        splits = make_splits(data, **split_settings)
    except ValueError as error:
        assert_medfew_error(error, "drawn")
        assert "no labelled images" in str(error) or any(f"class '{c}'" in str(error) for c in data.class_names)
        assert not must_split(data, split_settings), f"a splittable dataset was refused: {error}"
        return
    groups = split_groups(data, threshold=4, duplicates=True)
    labels = data.labels.numpy()
    fractions = split_settings["fractions"]
    parts = [p for p in SPLIT_VALUES if p == "test" or fractions[p] > 0]
    for split in splits:
        assert split.data.images is data.images and torch.equal(split.data.labels, data.labels)
        assert set(split.data.split.tolist()) == set(parts)  # every image in exactly one part, every part used
        for g in np.unique(groups):
            assert len(set(split.data.split[groups == g])) == 1, "a group crosses parts"
        assert (split.data.split[labels == UNLABELED] == "train").all()
        for k in range(data.n_classes):
            assert {p for p in parts if ((labels == k) & (split.data.split == p)).any()} == set(parts)
    if split_settings["split"] == "kfold":
        folds = split_settings["folds"]
        tests = np.stack([s.data.split == "test" for s in splits]).reshape(split_settings["repeats"], folds, -1)
        free = ~np.isin(groups, groups[labels == UNLABELED])
        assert (tests.sum(1)[:, free] == 1).all() and (tests.sum(1)[:, ~free] == 0).all()
    if len(np.unique(groups)) == len(data) and (labels != UNLABELED).all():
        assert_stratified(splits, labels, fractions, split_settings)


def must_split(data: ImageData, split_settings: dict) -> bool:
    """Conditions under which a split must succeed: one image per group, no unlabelled image, enough images per class."""
    labels = data.labels.numpy()
    if (labels == UNLABELED).any() or not len(data):
        return False
    if len(np.unique(split_groups(data, threshold=4, duplicates=True))) != len(data):
        return False
    sizes = np.bincount(labels, minlength=data.n_classes)
    parts = 2 + (split_settings["fractions"]["val"] > 0)
    if split_settings["split"] == "stratified":
        return bool((sizes >= parts).all())
    folds = split_settings["folds"]  # a test fold takes up to ceil(n / folds); the rest must reach train (and val)
    return bool(((sizes >= folds) & (sizes - np.ceil(sizes / folds) >= parts - 1)).all())


def assert_stratified(splits, labels: np.ndarray, fractions: dict, split_settings: dict) -> None:
    """With one image per group, a part of P holds its share of each class to within max(P - 1, 1) images.

    The greedy puts an image in the part furthest below its target (share x class size), after
    giving each part one: so no part ends a whole image over its target, the shortfalls sum to
    0, and none can be P - 1 or more below.
    """
    kfold = split_settings["split"] == "kfold"
    for k in np.unique(labels):
        n = (labels == k).sum()
        for split in splits:
            in_class = split.data.split[labels == k]
            if kfold:
                folds = split_settings["folds"]
                assert abs((in_class == "test").sum() - n / folds) < max(folds - 1, 1)
                rest, val = (in_class != "test").sum(), fractions["val"] / (fractions["train"] + fractions["val"])
                assert abs((in_class == "val").sum() - rest * val) < 1
            else:
                parts = [p for p in SPLIT_VALUES if fractions[p] > 0]
                for part in parts:
                    assert abs((in_class == part).sum() - n * fractions[part]) < max(len(parts) - 1, 1)

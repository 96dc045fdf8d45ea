"""A user's own folder of PNGs without a split: k-fold cross-validation pooled into one table, and a
run folder that never mixes results of other data (other images, other folds, other image size)."""

import csv
import re
from pathlib import Path

import pytest
import torch
from PIL import Image

from medfew.evaluation import compare


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def own_folder(folder: Path, *extra: str) -> list[str]:
    return [
        "data=image_folder", f"data.source.path={folder}", "data.channels=3", "data.image_size=16", "data.split=kfold",
        "protocol.per_class=[]", "protocol.fractions=[1.0]", "seeds=[0]", "learners=[prototype_pixels,logreg_pixels]",
        "report.reference=logreg_pixels", "report.n_resamples=500", "leakage.check=warn", *extra,
    ]  # fmt: skip


def copy_folder(source: Path, folder: Path) -> Path:
    """A copy of ``source``'s class folders of PNGs, to change on disk."""
    for path in source.rglob("*.png"):
        (folder / path.parent.name).mkdir(parents=True, exist_ok=True)
        (folder / path.parent.name / path.name).write_bytes(path.read_bytes())
    return folder


def test_kfold_on_an_rgb_png_folder_pools_its_folds(pbc_png_folder, compose_root, tmp_path):
    summary = compare(compose_root("config", tmp_path, own_folder(pbc_png_folder)))
    rows = read_rows(tmp_path / "results.csv")
    folds = sorted({r["fold"] for r in rows})
    assert folds == [f"repeat0-fold{k}" for k in range(5)] and len(rows) == 2 * 5
    assert len({r["data_hash"] for r in rows}) == 5  # one fingerprint per fold
    cell = summary["results"]["bal_acc"]["prototype_pixels"]["fraction=1"]
    assert cell["n"] == 5 and 0 <= cell["low"] < cell["mean"] < cell["high"] <= 1
    assert cell["mean"] > 0.25 + 0.1  # 4 blood-cell classes from raw pixels: above chance
    assert cell["vs_reference"]["n"] == 5  # paired by fold
    text = (tmp_path / "summary.md").read_text()
    assert "5-fold cross-validation" in text and "basophil" in text
    assert "; every image is its own group: no patient ids (data.groups, a groups.csv or DICOM PatientID) and no near duplicates" in text
    assert re.search(r"- labelled training images: fraction=1: (\d+(-\d+)?) of \1 \(100 %\)", text)


@pytest.mark.parametrize(
    "change, differs",
    [
        (["data.image_size=24"], "data.image_size: 16 there, 24 now"),
        (["data.folds=3"], "data.folds: 5 there, 3 now"),
        (["data.split_seed=1"], "data.split_seed: 0 there, 1 now"),
    ],
)
def test_a_rerun_with_other_data_is_refused_by_name(change, differs, pbc_png_folder, compose_root, tmp_path):
    compare(compose_root("config", tmp_path, own_folder(pbc_png_folder, "learners=[prototype_pixels]")))
    kept = ("results.csv", "config_resolved.yaml", "data.json", "leakage.json")
    before = {name: (tmp_path / name).read_text() for name in kept}
    with pytest.raises(ValueError, match=rf"holds results of other data: fold 'repeat0-fold\d' has fingerprint \w{{16}} there, .*{differs}"):
        compare(compose_root("config", tmp_path, own_folder(pbc_png_folder, "learners=[prototype_pixels]", *change)))
    assert {name: (tmp_path / name).read_text() for name in kept} == before  # nothing overwritten


def test_changed_images_on_disk_are_refused(pbc_png_folder, compose_root, tmp_path):
    folder = copy_folder(pbc_png_folder, tmp_path / "images")
    overrides = own_folder(folder, "learners=[prototype_pixels]", "data.group_duplicates=false")
    compare(compose_root("config", tmp_path / "run", overrides))
    first = sorted(folder.rglob("*.png"))[0]
    Image.open(first).rotate(90).save(first)
    with pytest.raises(ValueError, match="the settings are the same, so the images or labels on disk changed"):
        compare(compose_root("config", tmp_path / "run", overrides))


def test_a_copy_in_two_class_folders_is_named(pbc_png_folder, compose_root, tmp_path, caplog):
    folder = copy_folder(pbc_png_folder, tmp_path / "images")
    first, other = sorted(p for p in folder.iterdir())[:2]
    copied = sorted(first.glob("*.png"))[0]
    (other / "copy.png").write_bytes(copied.read_bytes())
    compare(compose_root("config", tmp_path / "run", own_folder(folder, "learners=[prototype_pixels]")))
    pair = f"{first.name}/{copied.name} ({first.name}) = {other.name}/copy.png ({other.name})"
    assert f"1 set of pixel-identical images with different labels: {pair}." in caplog.text
    summary = (tmp_path / "run" / "summary.md").read_text()
    assert f"- label conflicts: 1 set of pixel-identical images with different labels: {pair}\n" in summary


def test_the_split_line_counts_the_patients_kept_together(pbc_png_folder, compose_root, tmp_path):
    folder = copy_folder(pbc_png_folder, tmp_path / "images")
    images = sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*.png"))
    (folder / "groups.csv").write_text("file,group\n" + "".join(f"{name},p{i // 3}\n" for i, name in enumerate(images)))
    compare(compose_root("config", tmp_path / "run", own_folder(folder, "learners=[prototype_pixels]")))
    summary = (tmp_path / "run" / "summary.md").read_text()
    assert f"; 60 images in 20 groups (patients, near duplicates), none split across parts\n" in summary


def test_a_rerun_of_the_same_data_resumes(pbc_png_folder, compose_root, tmp_path):
    overrides = own_folder(pbc_png_folder, "learners=[prototype_pixels]")
    compare(compose_root("config", tmp_path, overrides))
    first = read_rows(tmp_path / "results.csv")
    compare(compose_root("config", tmp_path, [*overrides, "learners=[prototype_pixels,logreg_pixels]"]))
    rows = read_rows(tmp_path / "results.csv")
    assert rows[: len(first)] == first and len(rows) == 2 * len(first)


def test_a_changed_weights_file_is_another_learner(breastmnist, compose_root, tmp_path):
    """The result key covers the bytes of a pretrained backbone file, not only its path."""
    from medfew.models import create_backbone, save_backbone

    def save(seed):  # the global generator's state after a run is that run's, so seed it here
        torch.manual_seed(seed)
        return save_backbone(create_backbone("conv4", image_size=28, model_kwargs={"hidden": 8}), tmp_path / "weights.safetensors")

    weights = save(0)
    overrides = [
        "learners=[prototype]", "seeds=[0]", "protocol.fractions=[1.0]", f"backbone.pretrained={weights}",
        "backbone.model_kwargs.hidden=8", "report.reference=prototype",
    ]  # fmt: skip
    compare(compose_root("config", tmp_path / "run", overrides))
    save(1)  # other random weights, same path
    compare(compose_root("config", tmp_path / "run", overrides))
    hashes = [row["learner_hash"] for row in read_rows(tmp_path / "run" / "results.csv")]
    assert len(hashes) == 2 and hashes[0] != hashes[1]  # scored again, not reused


def test_a_class_missing_from_test_is_named_in_the_log_and_the_summary(compose_root, tmp_path, caplog):
    """train/ holds a, b and rare; test/ only a and b: rare is never scored."""
    pixels = torch.randint(0, 256, (18, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)).numpy()
    images = iter(pixels)
    for part, classes in (("train", ("a", "b", "rare")), ("test", ("a", "b"))):
        for name in classes:
            (tmp_path / "images" / part / name).mkdir(parents=True)
            for i in range(3):
                Image.fromarray(next(images)).save(tmp_path / "images" / part / name / f"{i}.png")
    overrides = [
        "data=image_folder", f"data.source.path={tmp_path / 'images'}", "data.image_size=16", "protocol.per_class=[1]",
        "protocol.fractions=[]", "seeds=[0]", "learners=[logreg_pixels]", "report.reference=logreg_pixels",
    ]  # fmt: skip
    compare(compose_root("config", tmp_path / "run", overrides))
    assert "classes missing from test: fold official: rare (in train, not in test: never scored;" in caplog.text
    summary = (tmp_path / "run" / "summary.md").read_text()
    assert "- classes missing from test: fold official: rare (in train, not in test: never scored; balanced accuracy" in summary

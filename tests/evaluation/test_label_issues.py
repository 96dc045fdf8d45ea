"""Label issues: a hand-made folder with one obvious planted flip, found by the audit, drawn on its
sheet, and left out of a run by data.exclude."""

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medfew.data import load_image_folder
from medfew.data.exclusion import exclude_listed, exclusion_note
from medfew.evaluation.label_issues import find_issues
from medfew.learners.classic import LogisticRegressionProbe

ROOT = Path(__file__).resolve().parents[2]


def planted_folder(root: Path) -> Path:
    """dark/ and bright/ with 15 textured 16 x 16 images each; dark/planted.png is a bright image."""
    rng = np.random.default_rng(0)
    for name, level in (("dark", 50), ("bright", 200)):
        (root / name).mkdir(parents=True)
        for i in range(15):
            pixels = np.clip(level + rng.normal(0, 25, (16, 16)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i:02d}.png")
    pixels = np.clip(200 + rng.normal(0, 25, (16, 16)), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(root / "dark" / "planted.png")
    return root


def test_cleanlab_ranks_the_planted_flip_first(tmp_path):
    data = load_image_folder(planted_folder(tmp_path / "scans"))
    build = lambda context: LogisticRegressionProbe(backbone=None, C=0.01)  # noqa: E731
    issues = find_issues(data, build, folds=3, workdir=tmp_path / "work")
    planted = list(data.filenames).index("dark/planted.png")
    assert issues.ranked[0] == planted
    assert data.class_names[issues.suggested[planted]] == "bright" and issues.quality[planted] < 0.2
    row = issues.rows(data)[0]
    assert row == row | {"rank": 1, "file": "dark/planted.png", "given_label": "dark", "suggested_label": "bright"}
    counts = issues.counts(data)
    assert counts["label_issues/dark"] >= 1 and 0 < counts["estimated_noise_rate"] < 0.2


def test_the_audit_writes_the_ranked_issues_and_their_sheet(tmp_path):
    folder = planted_folder(tmp_path / "scans")
    out = tmp_path / "audit"
    command = [
        sys.executable, "-m", "medfew", "audit", "data=image_folder", f"data.source.path={folder}", "data.image_size=16",
        "label_issues=true", "issue_finder.folds=3", "+knobs.steps=30", f"hydra.run.dir={out}",
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    with (out / "label_issues.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["rank", "file", "given_label", "suggested_label", "label_quality", "split"]
    assert rows[0]["file"] == "dark/planted.png" and rows[0]["suggested_label"] == "bright"
    with Image.open(out / "label_issues.png") as sheet:
        assert sheet.width > 300 and sheet.height > 200
    assert "label_issues/dark" in (out / "audit.json").read_text()
    data = load_image_folder(folder)
    kept = exclude_listed(data, out / "label_issues.csv")
    assert len(kept) == len(data) - len(rows) and "dark/planted.png" not in kept.filenames
    assert exclusion_note(out / "label_issues.csv").startswith(f"{len(rows)} images listed in")


def test_exclude_names_files_that_are_not_in_the_data(tmp_path):
    data = load_image_folder(planted_folder(tmp_path / "scans"))
    listed = tmp_path / "list.csv"
    listed.write_text("file\ndark/planted.png\ndark/missing.png\n")
    with pytest.raises(ValueError, match=r"1 of the 2 files listed in .*list.csv are not images of .*: dark/missing.png"):
        exclude_listed(data, listed)
    listed.write_text("name\ndark/planted.png\n")
    with pytest.raises(ValueError, match="has no 'file' column"):
        exclude_listed(data, listed)

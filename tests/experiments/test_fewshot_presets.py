"""The episode presets run at debug=smoke: every learner on the same 2 episodes per shot count."""

import csv
from pathlib import Path

import pytest

from medfew.evaluation import compare


@pytest.mark.slow
@pytest.mark.parametrize("preset, n_way", [("bloodcells_fewshot", 3), ("crossdomain", 2)])
def test_episode_preset_runs_at_smoke_settings(
    preset: str,
    n_way: int,
    bloodcells,
    brain_mri,
    pneumoniamnist,
    compose_root,
    tmp_path: Path,
):
    cfg = compose_root("config", tmp_path, [f"experiment={preset}", "debug=smoke"])
    summary = compare(cfg)
    with (tmp_path / "results.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(cfg.learners) * 3 * 2  # learners x shots x episodes
    assert {int(r["n_way"]) for r in rows} == {n_way}
    assert summary["learners"] == list(cfg.learners) and summary["identical_splits"]
    if preset == "crossdomain":  # tested on chest X-ray classes only, prepared on the others
        assert {c for r in rows for c in r["per_class_acc"].split('"')[1::2]} == {
            "normal",
            "pneumonia",
        }

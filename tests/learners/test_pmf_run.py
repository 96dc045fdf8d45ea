"""P>M>F end to end through the comparison at smoke settings: SSL pretraining -> ProtoNet
meta-training -> fine-tuning on each support set, on novel blood-cell episodes."""

import csv
from pathlib import Path

from medfew.evaluation import compare


def test_pmf_runs_every_stage_through_the_comparison(bloodcells, compose_root, tmp_path: Path):
    overrides = ["experiment=bloodcells_fewshot", "learners=[pmf]", "debug=smoke", "report.reference=pmf"]
    cfg = compose_root("config", tmp_path, overrides)
    assert cfg.knobs.steps == 2  # what shrinks pmf's SSL steps and fine-tuning steps
    summary = compare(cfg)
    with (tmp_path / "results.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 * 2 and {r["learner"] for r in rows} == {"pmf"}  # 1 / 5 / 10 shots x 2 episodes
    assert all(0 <= float(r["bal_acc"]) <= 1 for r in rows)
    assert list((tmp_path / "cache" / "ssl").glob("*/backbone.safetensors"))  # stage 1 exported
    assert list((tmp_path / "work").glob("pmf-*/*/seed0/checkpoints/last.ckpt"))  # stage 2 meta-trained
    assert "pmf" in summary["results"]["bal_acc"]

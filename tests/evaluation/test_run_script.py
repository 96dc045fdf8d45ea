"""One short end-to-end run of experiments/run.py in a subprocess, W&B offline."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = Path(os.environ.get("MEDFEW_DATA") or ROOT.parent / "shared" / "data")  # as tests/conftest.py


@pytest.mark.slow
def test_run_script_writes_every_output(breastmnist, tmp_path: Path):
    command = [
        sys.executable, "experiments/run.py", f"paths.log_dir={tmp_path}", f"paths.data_dir={DATA_DIR}",
        "learners=[logreg_pixels,prototype_pixels,finetune]", "seeds=[0,1]",
        "protocol.per_class=[5]", "protocol.fractions=[0.1]", "+learner_overrides.finetune.steps=3",
    ]  # fmt: skip
    env = os.environ | {"WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = tmp_path / "compare" / "breastmnist-label_budget"
    with (out / "results.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 * 2 * 2  # learners x settings x seeds
    assert {r["learner"] for r in rows} == {"logreg_pixels", "prototype_pixels", "finetune"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["reference"] == "finetune" and summary["identical_splits"]
    assert "| prototype_pixels |" in (out / "summary.md").read_text()
    for name in ("label_efficiency_per_class.png", "label_efficiency_fraction.png", "confusion_per_class_5.png", "config_resolved.yaml"):
        assert (out / name).stat().st_size > 0, name
    assert list((out / "wandb").glob("offline-run-*")), "no offline W&B run"
    assert "## bal_acc" in done.stdout

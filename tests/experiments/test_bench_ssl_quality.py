"""experiments/bench_ssl_quality.py at a tiny budget: one line per method, the floor and the supervised ceiling."""

import csv
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_prints_floor_ceiling_and_one_line_per_method(shared_file, tmp_path: Path):
    data = shared_file("pbc_bloodcells_64.npz").parent
    command = [
        sys.executable, str(ROOT / "experiments" / "bench_ssl_quality.py"), "--methods", "simclr,byol", "--steps", "2",
        "--batch-size", "16", "--monitor-per-class", "10", "--supervised", "--threads", "1", "--out", str(tmp_path),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=os.environ | {"MEDFEW_DATA": str(data)})
    assert done.returncode == 0, done.stderr[-3000:]
    lines = {line.split()[0]: line for line in done.stdout.splitlines() if " kNN " in line}
    assert set(lines) == {"random", "BN", "supervised", "simclr", "byol"}
    assert "pool 1920, monitor 80" in done.stdout and "(pool labels, 2 steps" in lines["supervised"]
    with (tmp_path / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(row["method"], row["steps"]) for row in rows] == [("simclr", "2"), ("byol", "2")]
    assert all(0.0 <= float(row["knn_after"]) <= 1.0 for row in rows)


def test_lightly_loop_prints_one_line_per_method_from_the_same_floor(shared_file, tmp_path: Path):
    data = shared_file("pbc_bloodcells_64.npz").parent
    command = [
        sys.executable, str(ROOT / "experiments" / "bench_ssl_lightly.py"), "--methods", "byol,simsiam", "--steps", "2",
        "--batch-size", "16", "--monitor-per-class", "10", "--threads", "1", "--out", str(tmp_path),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=os.environ | {"MEDFEW_DATA": str(data)})
    assert done.returncode == 0, done.stderr[-3000:]
    floor = next(line for line in done.stdout.splitlines() if line.startswith("random init")).split()[3]
    lines = [line for line in done.stdout.splitlines() if "(lightly)" in line]
    assert [line.split()[0] for line in lines] == ["byol", "simsiam"]
    assert all(line.split()[3] == floor and "steps 2" in line for line in lines)  # every method starts from the floor's network
    with (tmp_path / "simsiam" / "knn.csv").open() as f:
        assert [row["step"] for row in csv.DictReader(f)] == ["0", "2"]

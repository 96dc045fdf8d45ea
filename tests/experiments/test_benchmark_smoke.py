"""experiments/benchmark.py: every job's overrides compose, and a smoke run writes a filled file."""

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("benchmark", ROOT / "experiments" / "benchmark.py")
benchmark = importlib.util.module_from_spec(spec)
sys.modules["benchmark"] = benchmark  # dataclasses look their module up
spec.loader.exec_module(benchmark)


@pytest.mark.parametrize("budget", ["cpu", "full"])  # smoke: run below
def test_every_job_composes(budget: str):
    """A typo in an override would otherwise surface hours into a full run."""
    with initialize_config_dir(str(ROOT / "configs"), version_base="1.3"):
        for part in benchmark.PARTS:
            for job in benchmark.jobs(benchmark.BUDGETS[budget], part):
                if job.script is not None:
                    assert (ROOT / job.script).exists(), job.script
                    continue
                cfg = compose("config", overrides=[a for a in job.args if not a.startswith("hydra.")])
                assert cfg.learners, job.name
                if part == "reproduction":
                    assert list(cfg.protocol.fractions) == [1.0] and list(cfg.learners) == ["finetune"]


def test_smoke_run_writes_tables_commands_and_merges(bloodcells, tmp_path: Path):
    runs, out = tmp_path / "runs", tmp_path / "BENCH.md"
    benchmark.main(["--smoke", "--parts", "fewshot", "--runs", str(runs), "--out", str(out)])
    record = json.loads((runs / "fewshot-bloodcells" / "benchmark.json").read_text())
    assert record["returncode"] == 0 and record["wall_s"] > 0 and record["hardware"]["cores"] >= 1
    assert record["resumed_rows"] == 0 and f"paths.cache_dir={runs / 'cache'}" in record["command"]
    text = out.read_text()
    assert "experiment=bloodcells_fewshot" in text and "wall time" in text
    rows = [line for line in text.splitlines() if line.startswith("| prototype_pixels |")]
    assert len(rows) == 1 and re.search(r"0\.\d{3}", rows[0]), rows
    assert "not run yet" in text  # the parts not run are marked, not silently empty
    # a later call for another part reuses the finished job and keeps its table in the same file
    benchmark.main(["--smoke", "--parts", "fewshot", "--runs", str(runs), "--out", str(out), "--render-only"])
    assert out.read_text().count("| prototype_pixels |") == 1
    # a job cut off before its record was written resumes, and its wall time is marked as covering the rest only
    (runs / "fewshot-bloodcells" / "benchmark.json").unlink()
    rows = len(benchmark.ResultsFile(runs / "fewshot-bloodcells" / "results.csv").read())
    benchmark.main(["--smoke", "--parts", "fewshot", "--runs", str(runs), "--out", str(out)])
    assert json.loads((runs / "fewshot-bloodcells" / "benchmark.json").read_text())["resumed_rows"] == rows > 0
    assert f"resumed: {rows} result rows came from an earlier, interrupted run" in out.read_text()
    # a rerun on top of a finished record adds that record's wall time to the job's total
    first = json.loads((runs / "fewshot-bloodcells" / "benchmark.json").read_text())
    benchmark.main(["--smoke", "--parts", "fewshot", "--runs", str(runs), "--out", str(out), "--rerun"])
    second = json.loads((runs / "fewshot-bloodcells" / "benchmark.json").read_text())
    assert second["earlier_wall_s"] == first["wall_s"] and second["resumed_rows"] == rows
    total = second["wall_s"] + first["wall_s"]
    assert f"| fewshot-bloodcells (sum of its parts) | {total:.0f} |" in out.read_text()

"""SIGKILL a comparison run (experiments/run.py) after its first block; the same command resumes
and its results.csv and summary equal those of an uninterrupted run (exact on CPU)."""

import csv
import json

import pytest

from medfew.evaluation import compare
from medfew.evaluation.metrics import METRICS

TINY = [
    "learners=[prototype,prototype_pixels]", "seeds=[0,1]", "protocol.per_class=[5]", "protocol.fractions=[0.1]",
    "report.reference=prototype_pixels", "report.n_resamples=200", "logger=none",
]  # fmt: skip
RUN = "compare/breastmnist-label_budget"


def read_rows(path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_killed_comparison_resumes_to_the_uninterrupted_result(scripts, data_env, compose_root, breastmnist, tmp_path):
    def command(log_dir):
        return [scripts.python, "experiments/run.py", *TINY, f"paths.log_dir={log_dir}"]

    results = tmp_path / "killed" / RUN / "results.csv"
    scripts.kill_when(command(tmp_path / "killed"), data_env, ready=results.exists)
    kept = read_rows(results)
    assert 1 <= len(kept) < 2 * 2 * 2 and not (tmp_path / "killed" / RUN / "summary.json").exists()

    scripts.run_ok(command(tmp_path / "killed"), data_env)
    compare(compose_root("config", tmp_path / "straight", TINY))  # uninterrupted, in this process
    resumed, straight = read_rows(results), read_rows(tmp_path / "straight" / "results.csv")
    assert resumed[: len(kept)] == kept  # finished blocks are kept, not recomputed
    assert len(resumed) == len(straight) == 2 * 2 * 2  # learners x seeds x settings, no duplicates
    identity = lambda row: (row["learner"], row["setting"], row["seed"], row["episode"])  # noqa: E731
    straight = {identity(row): row for row in straight}
    for row in resumed:
        other = straight[identity(row)]
        assert {k: row[k] for k in row if k != "seconds"} == {k: other[k] for k in other if k != "seconds"}
    summaries = [json.loads(path.read_text()) for path in (results.parent / "summary.json", tmp_path / "straight" / "summary.json")]
    assert summaries[0]["results"] == summaries[1]["results"]
    assert set(METRICS) >= set(summaries[0]["results"])

"""Progress a log file can show: a line per finished task with an ETA from the plan (the stages' own start and end
lines: tests/ssl/test_pretrain.py); a run past its time limit stops after its task, says so, and the same command resumes."""

import csv
import json
import time

from medfew.evaluation.compare import compare
from medfew.evaluation.costs import Rate
from medfew.evaluation.plan import LearnerPlan, Plan, Stage
from medfew.evaluation.progress import Progress


def test_without_a_terminal_each_task_is_one_line_with_its_place_and_an_eta_from_the_plan():
    plan = Plan((
        LearnerPlan("finetune", 3, 0, (Stage("tasks fraction=1", "steps", (100,) * 3, Rate(0.1, 10.0)),)),  # 60 s
        LearnerPlan("ssl_finetune", 1, 0, (Stage("SSL pretraining", "pretrain.steps", (1000,), Rate(0.5)),)),  # 500 s
    ), "hand-made", "cpu")  # fmt: skip
    lines = []
    with Progress(plan, total=4, start=time.monotonic(), terminal=False, write=lines.append) as progress:
        progress.at({"learner": "finetune", "fold": "repeat0-fold1", "setting": "fraction=1", "seed": 2})
        progress.update()
        progress.update()
        progress.at({"learner": "ssl_finetune", "fold": "repeat0-fold1", "setting": "fraction=1", "seed": 2}).update()
    assert lines[0].startswith("task 1/4 done: finetune, fold repeat0-fold1, fraction=1, seed 2; elapsed 0.0 s, ETA 9.0 min")  # 540 s
    assert lines[1].endswith("ETA 8.7 min") and lines[2].endswith("ETA 20 s") and len(lines) == 3  # 520 s, then finetune's last task
    assert not progress.out_of_time() and Progress(None, 1, time.monotonic() - 2, limit_s=1).out_of_time()


def test_past_the_time_limit_the_run_stops_after_its_task_and_the_same_command_resumes(compose_root, tmp_path):
    overrides = ["debug=smoke", "learners=[prototype_pixels,logreg_pixels]", "threads=1", "time_limit=0.0001"]
    # a limit already passed when scoring starts; plan.json as a first run with this limit leaves it (nothing scaled)
    (tmp_path / "plan.json").write_text(json.dumps({"time_limit": 0.0001, "scaled": {}}))
    summary = compare(compose_root("config", tmp_path, overrides))
    with (tmp_path / "results.csv").open() as f:
        first = list(csv.DictReader(f))
    assert len(first) == 1 and first[0]["learner"] == "prototype_pixels"
    assert summary["timing"]["stopped"].startswith("time_limit = 0.0001 min passed after 1 of 6 tasks")
    assert "**Stopped early:** time_limit = 0.0001 min passed after 1 of 6 tasks" in (tmp_path / "summary.md").read_text()
    again = compare(compose_root("config", tmp_path, [*overrides[:3], "time_limit=null"]))
    with (tmp_path / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and rows[0] == first[0] and not again["timing"]["stopped"]
    assert {row["threads"] for row in rows} == {"1"} and again["timing"]["threads"] == 1  # beside each row's data fingerprint
    assert again["timing"]["learners"]["prototype_pixels"]["tasks"] == 2  # the plan counted only what was left

"""experiments/benchmark.py: every job composes at every budget; a smoke run fills BENCHMARKS.md's marked tables."""

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from medfew.evaluation.compare import learner_configs
from medfew.evaluation.results import ResultsFile

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("benchmark", ROOT / "experiments" / "benchmark.py")
benchmark = importlib.util.module_from_spec(spec)
spec.loader.exec_module(benchmark)
BUDGETS = sorted(p.stem for p in (ROOT / "configs" / "budget").glob("*.yaml"))
BLOCK = re.compile(r"<!-- medfew:table (\S+) -->\n(.*?)<!-- /medfew:table -->", re.DOTALL)
RAN = ("reproduction-breastmnist", "fewshot-bloodcells")  # one label-budget job, one few-shot job


def composed(argv: list[str]):
    return compose("config", overrides=[a for a in argv[2:] if not a.startswith("hydra.")])


@pytest.mark.parametrize("budget", BUDGETS)
def test_every_job_composes(budget: str, tmp_path: Path):
    """A typo in a job or a budget would otherwise surface hours into a run."""
    commands = {job: benchmark.command(job, budget, tmp_path, []) for job in benchmark.JOBS}
    with initialize_config_dir(str(ROOT / "configs"), version_base="1.3"):
        for job, argv in commands.items():
            if argv[1] != "experiments/run.py":
                assert (ROOT / argv[1]).exists() and all(isinstance(a, str) for a in argv), argv
                assert len(argv) > 2 if budget == "smoke" else True, f"the smoke budget must shorten {argv[1]}"
                continue
            cfg = composed(argv)
            assert cfg.learners and f"budget={budget}" in argv, job
            if job.startswith("reproduction-"):
                assert list(cfg.protocol.fractions) == [1.0] and list(cfg.learners) == ["finetune"] and cfg.published.acc


def test_cpu_budget_shrinks_every_learner_through_the_knobs(tmp_path: Path):
    """cpu: meta-learning and SSL shrink, per-episode fine-tuning keeps the preset's steps (``steps`` must not reach SSL)."""
    with initialize_config_dir(str(ROOT / "configs"), version_base="1.3"):
        cpu, full = (learner_configs(composed(benchmark.command("fewshot-bloodcells", b, tmp_path, []))) for b in ("cpu", "full"))
    assert cpu["maml"].learner.meta_train_steps == cpu["protonet"].learner.meta_train_steps == 200
    assert cpu["maml"].learner.inner_steps == 1 and cpu["maml"].learner.eval_inner_steps == 3
    assert cpu["ssl_finetune"].learner.pretrain.steps == cpu["ssl_prototype"].learner.pretrain.steps == 200
    assert cpu["finetune"].learner.steps == cpu["ssl_finetune"].learner.steps == full["finetune"].learner.steps
    assert cpu["finetune"].episodes == 200 and cpu["finetune"].data.image_size == 28


def test_smoke_run_fills_the_marked_tables(shared_file, tmp_path: Path):
    shared_file("breastmnist.npz")
    shared_file("pbc_bloodcells_64.npz")
    runs, out = tmp_path / "runs", tmp_path / "BENCHMARKS.md"
    argv = ["--budget", "smoke", "--only", ",".join(RAN), "--runs", str(runs), "--out", str(out), "learners=[prototype_pixels,finetune]"]
    benchmark.main(argv)
    committed, text = (ROOT / "BENCHMARKS.md").read_text(), out.read_text()
    # the committed file's blocks in the same order, the driver's tables among them; the prose untouched
    names = [name for name, _ in BLOCK.findall(committed)]
    assert [name for name, _ in BLOCK.findall(text)] == names and [n for n in names if n in benchmark.TABLES] == list(benchmark.TABLES)
    assert BLOCK.sub("", text) == BLOCK.sub("", committed)
    new, old = dict(BLOCK.findall(text)), dict(BLOCK.findall(committed))
    filled = {"reproduction", "fewshot-bloodcells", "wall-time"}
    assert {name for name in new if new[name] != old[name]} == filled  # the others keep their real-run tables
    assert all("SMOKE RUN" in new[name] and "budget=smoke" in new[name] for name in filled - {"wall-time"})

    # a few-shot cell is the mean of the run's results.csv rows
    rows = [r for r in ResultsFile(runs / "fewshot-bloodcells" / "results.csv").read() if r["learner"] == "prototype_pixels"]
    header = next(line for line in new["fewshot-bloodcells"].splitlines() if line.startswith("| learner |")).split(" | ")
    row = next(line for line in new["fewshot-bloodcells"].splitlines() if line.startswith("| prototype_pixels |")).split(" | ")
    expected = np.mean([float(r["acc"]) for r in rows if r["setting"] == "shots=5"])
    assert row[header.index("shots=5")].startswith(f"{expected:.3f} [") and "n=2" in row[header.index("shots=5")]
    assert "(Δ " in row[header.index("shots=5")] and "p=" in row[header.index("shots=5")]
    # reproduction: finetune's accuracy from results.csv, the published one from the preset's `published:` key
    (acc_row,) = [r for r in ResultsFile(runs / "reproduction-breastmnist" / "results.csv").read() if r["learner"] == "finetune"]
    with initialize_config_dir(str(ROOT / "configs"), version_base="1.3"):
        published = compose("config", overrides=["experiment=breastmnist_label_efficiency"]).published
    cells = next(line for line in new["reproduction"].splitlines() if line.startswith("| breastmnist | preset |")).split(" | ")
    assert cells[2] == "1" and cells[3].startswith(f"{float(acc_row['acc']):.3f}") and cells[4] == str(published.acc)
    assert "reproduction-pneumoniamnist | not run" in new["reproduction"]

    # each job's command, wall time and hardware beside its outputs; rerunning skips finished jobs and renders the same
    record = json.loads((runs / "fewshot-bloodcells" / "benchmark.json").read_text())
    assert record["returncode"] == 0 and len(record["wall_s"]) == 1 and record["wall_s"][0] > 0
    assert record["hardware"].startswith(("CPU only: ", "GPU: "))
    assert record["command"].startswith("python experiments/run.py experiment=bloodcells_fewshot budget=smoke")
    benchmark.main(argv)
    assert out.read_text() == text and json.loads((runs / "fewshot-bloodcells" / "benchmark.json").read_text()) == record

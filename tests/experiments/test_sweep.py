"""A multirun gathers into one comparison table; labels, clashes; the submitit launcher composes."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from medfew.evaluation.plots import SMOKE
from medfew.evaluation.report import LABELLED
from medfew.evaluation.results import COLUMNS, ResultsFile
from medfew.files import write_json
from medfew.sweep import gather, sweep_header

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"
DATA_DIR = Path(os.environ.get("MEDFEW_DATA") or ROOT.parent / "shared" / "data")  # as tests/conftest.py


@pytest.mark.slow
def test_multirun_of_two_learners_and_two_seeds_gathers_into_one_table(breastmnist, tmp_path: Path):
    command = [
        sys.executable, "experiments/run.py", "-m", f"paths.log_dir={tmp_path}", "logger=none",
        "learners=[prototype_pixels],[logreg_pixels]", "seeds=[0],[1]", "protocol.per_class=[5]",
        "protocol.fractions=[]", "report.reference=logreg_pixels", f"paths.cache_dir={tmp_path}/cache",
    ]  # fmt: skip
    env = os.environ | {"MEDFEW_DATA": str(DATA_DIR)}
    done = subprocess.run(
        command,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    sweep = tmp_path / "compare" / "multirun" / "breastmnist-label_budget"
    assert len(list(sweep.glob("*/results.csv"))) == 4  # one folder per job, not nested by the path-valued override
    with (sweep / "results.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted((r["learner"], r["seed"]) for r in rows) == [
        ("logreg_pixels", "0"), ("logreg_pixels", "1"), ("prototype_pixels", "0"), ("prototype_pixels", "1"),
    ]  # fmt: skip
    summary = json.loads((sweep / "summary.json").read_text())
    cell = summary["results"]["bal_acc"]["prototype_pixels"]["per_class=5"]
    assert cell["n"] == 2 and cell["vs_reference"]["n"] == 2  # both seeds, paired across jobs
    table = (sweep / "summary.md").read_text()
    assert table.count("| prototype_pixels |") == 6 and "| logreg_pixels |" in table  # 5 metric tables + the paired row
    assert "Paired comparison with `logreg_pixels`" in done.stdout  # printed when the sweep ends


def fake_job(
    sweep: Path,
    name: str,
    overrides: list[str],
    learner: str,
    seed: int,
    bal_acc: float,
    per_class: int = 5,
) -> None:
    """A job folder as a run writes it: .hydra/overrides.yaml and a one-row results.csv."""
    job = sweep / name
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(OmegaConf.to_yaml(overrides))
    row = dict.fromkeys(COLUMNS, 0) | {
        "dataset": "d", "protocol": "label_budget", "learner": learner, "learner_hash": "h", "setting": f"per_class={per_class}", "kind": "per_class",
        "value": per_class, "seed": seed, "split_hash": f"s{seed}", "corruption": "none", "severity": 0, "label_noise": 0.0,
        "episode": 0, "n_way": 2, "n_present": 2, "acc": bal_acc, "bal_acc": bal_acc, "macro_f1": bal_acc,
        "auroc": bal_acc, "ece": 0.1, "per_class_acc": json.dumps({"a": 1.0, "b": 0.0}),
        "confusion": json.dumps({"classes": ["a", "b"], "counts": [[1, 0], [1, 0]]}),
    }  # fmt: skip
    ResultsFile(job / "results.csv").append([row])


REPORT = {
    "metrics": ["bal_acc"],
    "plot_metrics": ["bal_acc"],
    "reference": None,
    "n_resamples": 100,
}


def test_jobs_differing_in_more_than_seeds_label_their_learners(tmp_path: Path):
    for i, (backbone, seed, score) in enumerate(
        [
            ("conv4", 0, 0.6),
            ("conv4", 1, 0.8),
            ("resnet18", 0, 0.5),
            ("resnet18", 1, 0.7),
        ]
    ):
        fake_job(
            tmp_path,
            f"job{i}",
            ["experiment=x", f"backbone={backbone}", f"seeds=[{seed}]"],
            "finetune",
            seed,
            score,
        )
    summary = gather(tmp_path, report=REPORT)
    cells = summary["results"]["bal_acc"]
    assert sorted(cells) == [
        "finetune [backbone=conv4]",
        "finetune [backbone=resnet18]",
    ]
    assert cells["finetune [backbone=conv4]"]["per_class=5"]["mean"] == pytest.approx(0.7)
    assert cells["finetune [backbone=resnet18]"]["per_class=5"]["mean"] == pytest.approx(0.6)


def test_a_relabelled_reference_is_the_version_on_defaults(tmp_path: Path):
    for i, (stem, seed, score) in enumerate([(None, 0, 0.6), (None, 1, 0.7), ("cifar", 0, 0.7), ("cifar", 1, 0.9)]):
        fake_job(tmp_path, f"job{i}", [f"seeds=[{seed}]"] + ([f"backbone.stem={stem}"] if stem else []), "finetune", seed, score)
    summary = gather(tmp_path, report=REPORT | {"reference": "finetune"})
    assert summary["reference"] == "finetune [backbone.stem=(default)]"
    versus = summary["results"]["bal_acc"]["finetune [backbone.stem=cifar]"]["per_class=5"]["vs_reference"]
    assert versus["n"] == 2 and versus["mean_diff"] == pytest.approx(0.15)


def test_a_reference_of_several_versions_off_defaults_is_named_by_its_label(tmp_path: Path):
    for i, (backbone, seed, score) in enumerate([("conv4", 0, 0.6), ("conv4", 1, 0.8), ("resnet18", 0, 0.5), ("resnet18", 1, 0.6)]):
        fake_job(tmp_path, f"job{i}", [f"backbone={backbone}", f"seeds=[{seed}]"], "finetune", seed, score)
    assert gather(tmp_path, report=REPORT | {"reference": "finetune"})["reference"] is None
    assert "No paired tests: the reference `finetune` is none of the learners here" in (tmp_path / "summary.md").read_text()
    summary = gather(tmp_path, report=REPORT, reference="finetune [backbone=conv4]")
    written = (tmp_path / "results.csv").stat().st_mtime_ns
    versus = summary["results"]["bal_acc"]["finetune [backbone=resnet18]"]["per_class=5"]["vs_reference"]
    assert summary["reference"] == "finetune [backbone=conv4]" and versus["mean_diff"] == pytest.approx(-0.15)
    with pytest.raises(ValueError, match=r"reference 'finetune \[backbone=vgg\]' is none of the gathered learners: \['finetune \[backbone=conv4\]'"):
        gather(tmp_path, report=REPORT, reference="finetune [backbone=vgg]")
    assert (tmp_path / "results.csv").stat().st_mtime_ns == written  # nothing rewritten


def test_jobs_differing_only_in_settings_or_reporting_keep_their_learner_names(tmp_path: Path):
    for i, per_class in enumerate([5, 10]):
        overrides = [f"protocol.per_class=[{per_class}]", "seeds=[0]", f"report.reference=r{i}", f"logger={'none' if i else 'wandb'}"]
        fake_job(tmp_path, f"job{i}", overrides, "finetune", 0, 0.5 + i / 10, per_class)
    summary = gather(tmp_path, report=REPORT)
    assert list(summary["results"]["bal_acc"]) == ["finetune"]
    assert [s["setting"] for s in summary["settings"]] == ["per_class=5", "per_class=10"]


def test_a_learners_overrides_label_only_that_learner(tmp_path: Path):
    for i, lr in enumerate([0.1, 0.01]):
        for learner, score in (("logreg_pixels", 0.6), ("finetune", 0.6 + i / 10)):
            fake_job(tmp_path, f"{learner}{i}", [f"learners=[{learner}]", f"seeds=[{i}]", f"+learner_overrides.finetune.lr={lr}"], learner, i, score)
    summary = gather(tmp_path, report=REPORT | {"reference": "logreg_pixels"})
    assert sorted(summary["learners"]) == ["finetune [lr=0.01]", "finetune [lr=0.1]", "logreg_pixels"]
    assert summary["reference"] == "logreg_pixels" and summary["results"]["bal_acc"]["logreg_pixels"]["per_class=5"]["n"] == 2


def test_a_dict_override_labels_by_the_entries_that_differ(tmp_path: Path):
    for i, (lr, path) in enumerate([(0.1, "/w/a.safetensors"), (0.01, "/w/a.safetensors"), (0.01, "/w/b.safetensors")]):
        settings = f"{{steps: 500, lr: {lr}, backbone: {{pretrained: '{path}'}}}}"
        fake_job(tmp_path, f"job{i}", ["seeds=[0]", f"+learner_overrides.finetune={settings}"], "finetune", 0, 0.5 + i / 10)
    assert sorted(gather(tmp_path, report=REPORT)["learners"]) == [
        "finetune [backbone.pretrained=/w/a.safetensors, lr=0.01]",
        "finetune [backbone.pretrained=/w/a.safetensors, lr=0.1]",
        "finetune [backbone.pretrained=/w/b.safetensors, lr=0.01]",
    ]


def test_a_sweep_with_a_smoke_job_is_reported_as_a_smoke_run(tmp_path: Path):
    for i in range(2):
        fake_job(tmp_path, f"job{i}", [f"seeds=[{i}]"], "finetune", i, 0.6)
    (tmp_path / "job1" / "config_resolved.yaml").write_text("smoke: true\n")
    assert gather(tmp_path, report=REPORT)["header"] == {"smoke": True}
    assert SMOKE in (tmp_path / "summary.md").read_text().splitlines()[2]
    (tmp_path / "job1" / "config_resolved.yaml").write_text("smoke: false\n")
    assert gather(tmp_path, report=REPORT)["header"] == {} and SMOKE not in (tmp_path / "summary.md").read_text()


def test_jobs_scoring_the_same_learner_and_seed_twice_are_named(tmp_path: Path):
    fake_job(tmp_path, "a", ["trainer=cpu", "seeds=[0]"], "finetune", 0, 0.6)
    fake_job(tmp_path, "b", ["trainer=cpu", "seeds=[0,1]"], "finetune", 0, 0.7)
    with pytest.raises(
        ValueError,
        match="jobs a and b both scored learner finetune, fold 0, per_class=5, seed 0: no override that applies to it differs",
    ):
        gather(tmp_path, report=REPORT)


def test_a_folder_without_jobs_is_named(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match=f"no job results.csv under {tmp_path}"):
        gather(tmp_path)


def test_submitit_launcher_composes():
    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=["hydra/launcher=slurm", "experiment=bloodcells_fewshot"],
            return_hydra_config=True,
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher.gpus_per_node, launcher.max_num_timeout) == (1, 3)
    assert cfg.hydra.callbacks.gather._target_ == "medfew.sweep.GatherSweep"


def test_the_gathered_header_lists_every_jobs_labelled_counts(tmp_path: Path):
    jobs = []
    for name, counts in (("a", {"fraction=0.01": "2 of 30 (6.67 %)"}), ("b", {"fraction=0.1": "3 of 30 (10 %)"})):
        header = {"classes": ["x", "y"], LABELLED: counts, "data fingerprints": {"all": name}}
        write_json(tmp_path / name / "summary.json", {"header": header})
        jobs.append(tmp_path / name)
    assert sweep_header(jobs, [OmegaConf.create(), OmegaConf.create()]) == {
        "classes": ["x", "y"], LABELLED: {"fraction=0.01": "2 of 30 (6.67 %)", "fraction=0.1": "3 of 30 (10 %)"},
    }  # fmt: skip

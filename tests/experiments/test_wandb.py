"""W&B around a comparison: disabled; offline (numbers, tables, plots, result files, the resolved
config, tags, group), resumed when the run folder is run again; an unreachable server."""

import csv
import warnings
from pathlib import Path

import pytest
import wandb
from omegaconf import OmegaConf

from medfew.evaluation import compare
from medfew.tracking import RUN_ID_FILE, read_offline_run, value_tags

TINY = [
    "learners=[prototype_pixels]",
    "protocol.per_class=[5]",
    "protocol.fractions=[]",
    "seeds=[0]",
    "report.reference=null",
]


@pytest.fixture(autouse=True)
def wandb_data_in_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """W&B's artifact staging copies in the test's folder, not the home one; its console lines off."""
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb-data"))
    monkeypatch.setenv("WANDB_SILENT", "true")


def offline_runs(out: Path) -> list[Path]:
    """The run's offline-run-* folders, once the W&B service has written their run files out."""
    wandb.teardown()
    return sorted((out / "wandb").glob("offline-run-*"))


def test_value_tags_are_one_per_value():
    assert value_tags({"learner": ["finetune", "protonet"], "seed": [0], "fraction": [0.1, 1.0], "shots": None}) == [
        "learner:finetune", "learner:protonet", "seed:0", "fraction:0.1", "fraction:1",
    ]  # fmt: skip


def test_disabled_writes_results_and_no_wandb_folder(breastmnist, compose_root, tmp_path: Path):
    compare(compose_root("config", tmp_path, ["logger=none", *TINY]))
    assert (tmp_path / "summary.md").exists() and not (tmp_path / "wandb").exists() and not (tmp_path / RUN_ID_FILE).exists()


def test_offline_run_holds_numbers_files_config_and_tags(breastmnist, compose_root, tmp_path: Path):
    summary = compare(compose_root("config", tmp_path, ["logger=wandb", "task_name=my_experiment", *TINY]))
    (folder,) = offline_runs(tmp_path)
    run = read_offline_run(folder)
    assert run.group == "my_experiment"
    assert {"breastmnist", "learner:prototype_pixels", "seed:0", "per_class:5"} <= set(run.tags)
    with (tmp_path / "results.csv").open() as f:
        (setting,) = {row["setting"] for row in csv.DictReader(f)}
    key = f"bal_acc/prototype_pixels/{setting}"
    assert run.summary[key] == pytest.approx(summary["results"]["bal_acc"]["prototype_pixels"][setting]["mean"])
    (artifact,) = [a for a in run.artifacts if a["type"] == "results"]
    assert sorted(artifact["files"]) == ["results.csv", "summary.json", "summary.md"]
    resolved = OmegaConf.to_container(OmegaConf.load(tmp_path / "config_resolved.yaml"))
    assert {k: v for k, v in run.config.items() if k != "_wandb"} == resolved  # nested, every learner's settings
    media = folder / "files" / "media"
    assert list((media / "table").glob("comparison_*.table.json")) and list((media / "table").glob("results_*.table.json"))
    assert list((media / "images" / "plots").glob("label_efficiency_*.png"))


def test_rerun_in_the_same_folder_resumes_the_wandb_run(breastmnist, compose_root, tmp_path: Path):
    for _ in range(2):
        compare(compose_root("config", tmp_path, ["logger=wandb", *TINY]))
    attempts = offline_runs(tmp_path)
    assert len(attempts) == 2
    assert {read_offline_run(folder).id for folder in attempts} == {(tmp_path / RUN_ID_FILE).read_text()}


def test_unreachable_server_falls_back_to_offline_and_loses_nothing(
    breastmnist, compose_root, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compare(compose_root("config", tmp_path, ["logger=wandb_online", "logger.init_timeout=5", *TINY]))
    assert any("logging offline" in str(w.message) for w in caught), [str(w.message) for w in caught]
    (folder,) = offline_runs(tmp_path)
    assert read_offline_run(folder).id == (tmp_path / RUN_ID_FILE).read_text()
    assert (tmp_path / "summary.md").exists() and len((tmp_path / "results.csv").read_text().splitlines()) == 2

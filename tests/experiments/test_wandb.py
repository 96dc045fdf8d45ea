"""W&B around a comparison: disabled, offline (tables, plots, tags, group), and an unreachable server."""

import warnings
from pathlib import Path

import pytest
import wandb

from medfew.evaluation import compare
from medfew.tracking import value_tags

TINY = [
    "learners=[prototype_pixels]",
    "protocol.per_class=[5]",
    "protocol.fractions=[]",
    "seeds=[0]",
    "report.reference=null",
]


def offline_runs(out: Path) -> list[Path]:
    return sorted((out / "wandb").glob("offline-run-*"))


def test_value_tags_are_one_per_value():
    assert value_tags({"learner": ["finetune", "protonet"], "seed": [0], "fraction": [0.1, 1.0], "shots": None}) == [
        "learner:finetune", "learner:protonet", "seed:0", "fraction:0.1", "fraction:1",
    ]  # fmt: skip


def test_disabled_writes_results_and_no_wandb_folder(breastmnist, compose_root, tmp_path: Path):
    compare(compose_root("config", tmp_path, ["logger=none", *TINY]))
    assert (tmp_path / "summary.md").exists() and not (tmp_path / "wandb").exists()


def test_offline_run_holds_tables_plots_and_tags(breastmnist, compose_root, tmp_path: Path):
    compare(compose_root("config", tmp_path, ["logger=wandb", "task_name=my_experiment", *TINY]))
    wandb.teardown()  # the W&B service writes the run file out when it stops
    (run,) = offline_runs(tmp_path)
    media = run / "files" / "media"
    assert list((media / "table" / "summary").glob("bal_acc_*.table.json")) and list((media / "table").glob("results_*.table.json"))
    assert list((media / "images" / "plots").glob("label_efficiency_per_class_*.png"))
    record = next(run.glob("run-*.wandb")).read_bytes()  # the run record holds group and tags as plain strings
    for text in (
        b"my_experiment",
        b"learner:prototype_pixels",
        b"seed:0",
        b"per_class:5",
        b"breastmnist",
    ):
        assert text in record, text


def test_unreachable_server_falls_back_to_offline_and_loses_nothing(
    breastmnist, compose_root, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compare(compose_root("config", tmp_path, ["logger=wandb_online", "logger.init_timeout=5", *TINY]))
    assert any("logging offline" in str(w.message) for w in caught), [str(w.message) for w in caught]
    assert len(offline_runs(tmp_path)) == 1
    assert (tmp_path / "summary.md").exists() and len((tmp_path / "results.csv").read_text().splitlines()) == 2

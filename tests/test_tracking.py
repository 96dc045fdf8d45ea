"""medfew.tracking: what offline W&B runs hold, read back from their run files."""

import json
import math
import time
from pathlib import Path

import pandas as pd
import pytest
import pytorch_lightning as pl
import torch
import wandb
from PIL import Image
from safetensors.torch import save_file
from torch import nn

from medfew.models import create_backbone, save_backbone
from medfew.models.backbone import read_spec
from medfew.tracking import (
    RUN_ID_FILE,
    log_backbone,
    log_comparison,
    read_offline_run,
    start_wandb,
    summary_scalars,
    wandb_loggers,
)

NAN = float("nan")
#: two rows of ``medfew.evaluation.report.summary_table``'s shape (a subset of its columns)
TABLE = pd.DataFrame(
    dict(
        metric=["bal_acc", "bal_acc"], learner=["finetune", "protonet"], setting=["shots=1", "shots=1"],
        kind=["shots", "shots"], value=[1, 1], mean=[0.5, 0.625], low=[0.4, NAN], high=[0.6, NAN], n=[10, 1],
        best=[False, True], p_wilcoxon=[NAN, 0.25], reason=["", "n < 2: no interval"],
    )
)  # fmt: skip
SUMMARY = dict(
    dataset=["breastmnist"], protocol=["episodes"], learners=["finetune", "protonet"], metrics=["bal_acc"],
    reference="finetune", confidence=0.95, identical_splits=True, results={},
)  # fmt: skip
CONFIG = {"learner_settings": {"protonet": {"_target_": "medfew.fewshot.ProtoNet", "backbone": {"hidden": 8}}}, "seeds": [0, 1]}


@pytest.fixture(autouse=True)
def quiet_wandb(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """W&B's console lines off; its artifact staging copies in the test's folder, not the home one."""
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb-data"))


def offline_runs(run_dir: Path) -> list[Path]:
    """The run's offline-run-* folders, once the W&B service has written their run files out."""
    wandb.teardown()
    return sorted((run_dir / "wandb").glob("offline-run-*"))


def comparison_folder(out: Path) -> Path:
    """What ``write_report`` leaves in a run folder: results.csv, summary.md / .json and a plot."""
    out.mkdir()
    rows = pd.DataFrame(dict(learner=["protonet"], setting=["shots=1"], episode=[0], bal_acc=[0.625]))
    rows.to_csv(out / "results.csv", index=False)
    (out / "summary.md").write_text("# Comparison\n")
    (out / "summary.json").write_text(json.dumps(SUMMARY))
    Image.new("RGB", (8, 8)).save(out / "label_efficiency_bal_acc.png")
    return out


def test_summary_scalars_are_every_finite_number_by_metric_learner_and_setting():
    assert summary_scalars(TABLE) == {
        "bal_acc/finetune/shots=1": 0.5,
        "bal_acc/finetune/shots=1/low": 0.4,
        "bal_acc/finetune/shots=1/high": 0.6,
        "bal_acc/finetune/shots=1/n": 10,
        "bal_acc/protonet/shots=1": 0.625,
        "bal_acc/protonet/shots=1/n": 1,
        "bal_acc/protonet/shots=1/p_wilcoxon": 0.25,
    }


def test_offline_comparison_run_holds_numbers_tables_plots_files_and_config(tmp_path: Path):
    out = comparison_folder(tmp_path / "run")
    run = start_wandb(run_dir=out, config=CONFIG)
    log_comparison(run, SUMMARY, TABLE, out)
    assert wandb.run is None  # finished
    (folder,) = offline_runs(out)
    recorded = read_offline_run(folder)
    numbers = {k: v for k, v in recorded.summary.items() if k.startswith("bal_acc/")}
    assert numbers == summary_scalars(TABLE) and isinstance(numbers["bal_acc/finetune/shots=1/n"], int)
    assert {k: v for k, v in recorded.config.items() if k != "_wandb"} == CONFIG
    (artifact,) = [a for a in recorded.artifacts if a["type"] == "results"]
    assert artifact["name"] == f"results-{recorded.id}"
    assert sorted(artifact["files"]) == ["results.csv", "summary.json", "summary.md"]
    assert artifact["metadata"] == {k: v for k, v in SUMMARY.items() if k != "results"}
    media = folder / "files" / "media"
    (comparison,) = (media / "table").glob("comparison_*.table.json")
    logged = json.loads(comparison.read_text())
    means = [row[logged["columns"].index("mean")] for row in logged["data"]]
    assert means == [0.5, 0.625]
    assert list((media / "table").glob("results_*.table.json"))
    assert list((media / "images" / "plots").glob("label_efficiency_bal_acc_*.png"))


def test_rerun_of_a_run_folder_resumes_its_wandb_run(tmp_path: Path):
    ids = []
    for run_dir in (tmp_path / "a", tmp_path / "a", tmp_path / "b"):
        run = start_wandb(run_dir=run_dir)
        ids.append(run.id)
        run.finish()
        time.sleep(1)  # offline-run-<time>-<id> folders are named to the second
    assert ids[0] == ids[1] != ids[2]
    assert (tmp_path / "a" / RUN_ID_FILE).read_text() == ids[0]
    attempts = offline_runs(tmp_path / "a")
    assert len(attempts) == 2 and [read_offline_run(folder).id for folder in attempts] == ids[:2]


def test_disabled_is_none_and_leaves_no_files(tmp_path: Path):
    assert start_wandb(mode="disabled", run_dir=tmp_path) is None and not list(tmp_path.iterdir())
    with pytest.raises(ValueError, match="logger mode 'offlien' is not one of"):
        start_wandb(mode="offlien", run_dir=tmp_path)


def test_backbone_export_is_a_model_artifact_with_its_spec(tmp_path: Path):
    backbone = create_backbone("conv4", in_chans=1, image_size=28, model_kwargs={"hidden": 4})
    path = save_backbone(backbone, tmp_path / "simclr-seed0" / "backbone.safetensors")
    run = start_wandb(run_dir=tmp_path)
    log_backbone(run, path)
    run.finish()
    (artifact,) = read_offline_run(offline_runs(tmp_path)[0]).artifacts
    assert artifact == dict(name="backbone-simclr-seed0", type="model", metadata=read_spec(path), files=["backbone.safetensors"])
    assert artifact["metadata"]["model_kwargs"] == {"hidden": 4}


def test_a_file_without_spec_is_refused(tmp_path: Path):
    path = tmp_path / "weights.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(ValueError, match="weights.safetensors is not a medfew backbone export"):
        log_backbone(None, path)


class OneStep(pl.LightningModule):
    """One SGD step on a 1-weight model, logging train/loss."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1))

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        loss = (self.weight * batch).pow(2).mean()
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_lightning_metrics_reach_the_run_under_their_prefix(tmp_path: Path):
    assert wandb_loggers(None) == []
    run = start_wandb(run_dir=tmp_path)
    trainer = pl.Trainer(
        max_steps=1, logger=wandb_loggers(run, prefix="protonet"), log_every_n_steps=1, accelerator="cpu",
        enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False, default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(OneStep(), torch.utils.data.DataLoader(torch.full((1, 1), 2.0)))
    run.finish()
    summary = read_offline_run(offline_runs(tmp_path)[0]).summary
    assert math.isclose(summary["protonet-train/loss"], 4.0)


def test_records_spanning_several_run_file_blocks_read_back_whole(tmp_path: Path):
    config = {"notes": ["x" * 1000 for _ in range(100)]}  # one ~100 KB record over four 32 KiB blocks
    run = start_wandb(run_dir=tmp_path, config=config)
    run.summary.update({"after": 1.5})
    run.finish()
    recorded = read_offline_run(offline_runs(tmp_path)[0])
    assert recorded.config["notes"] == config["notes"] and recorded.summary["after"] == 1.5

"""``trainer=ddp`` with two CPU processes on gloo gives the same kind of checkpoint and export,
and one offline W&B run."""

import subprocess
import sys
from pathlib import Path

import torch

from medfew.models import load_backbone

ROOT = Path(__file__).resolve().parents[2]


def test_two_process_ddp_on_cpu_writes_a_loadable_checkpoint_and_export(tmp_path, data_env):
    command = [
        sys.executable, str(ROOT / "experiments" / "pretrain.py"),
        "backbone=conv4", "backbone.model_kwargs.hidden=8", "data.image_size=32", "max_images=32",
        "monitor_per_class=2", "ssl.batch_size=8", "ssl.steps=4", "ssl.method.hidden_dim=32",
        "ssl.method.output_dim=16", "logger=wandb", "trainer=ddp", "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false", f"paths.log_dir={tmp_path}",
    ]
    result = subprocess.run(command, cwd=ROOT, env=data_env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in result.stderr + result.stdout
    run_dir = tmp_path / "pretrain" / "bloodcells-simclr-conv4-seed0"
    assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 1  # the second process logs nothing
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["epoch"] == 1 and checkpoint["global_step"] == 2 * 2  # 4 steps of 32 images / (2 x 8) per epoch
    backbone = load_backbone(run_dir / "backbone.safetensors")
    prefix = "method.backbone."
    trained = {k[len(prefix):]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)}
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, trained[key]), key

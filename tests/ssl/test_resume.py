"""Kill a pretraining run (SIGKILL) after a checkpoint; the same command resumes and ends
with the same backbone as an uninterrupted run."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[2]
SMALL = [
    "backbone=conv4", "backbone.model_kwargs.hidden=8", "data.image_size=32", "max_images=16",
    "monitor_per_class=2", "ssl.batch_size=8", "ssl.method.hidden_dim=32", "ssl.method.output_dim=16",
    "logger=none", "trainer=cpu", "trainer.enable_progress_bar=false",
]


def command(log_dir: Path, *overrides: str) -> list[str]:
    return [sys.executable, str(ROOT / "experiments" / "pretrain.py"), *SMALL, f"paths.log_dir={log_dir}", *overrides]


def test_killed_run_resumes_from_last_checkpoint_and_matches_an_uninterrupted_run(tmp_path, data_env):
    budget = "ssl.steps=24"  # 12 epochs of 16 images / 8
    interrupted = tmp_path / "interrupted"
    run_dir = interrupted / "pretrain" / "bloodcells-simclr-conv4-seed0"
    process = subprocess.Popen(
        command(interrupted, budget), cwd=ROOT, env=data_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    killed_at = torch.load(checkpoint, map_location="cpu", weights_only=True)["epoch"]
    assert killed_at < 11 and not (run_dir / "backbone.safetensors").exists()

    resumed = subprocess.run(command(interrupted, budget), cwd=ROOT, env=data_env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Restoring states from the checkpoint" in resumed.stderr + resumed.stdout
    straight = tmp_path / "straight"
    subprocess.run(command(straight, budget), cwd=ROOT, env=data_env, check=True, capture_output=True)

    a = load_file(run_dir / "backbone.safetensors")
    b = load_file(straight / "pretrain" / "bloodcells-simclr-conv4-seed0" / "backbone.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-5, msg=key)

"""Tiny real data, tiny networks and subprocess helpers for the trust tests (resume, bad input, scale-out)."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

from medfew.data import ImageData, label_budget, preprocess

ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = Path(os.environ.get("MEDFEW_DATA") or ROOT.parent / "shared" / "data")  # as tests/conftest.py


@pytest.fixture(scope="session")
def pbc_pool(bloodcells: ImageData) -> ImageData:
    """16 unlabeled PBC images (2 per class) at 32 x 32: two SSL batches of 8."""
    return preprocess(bloodcells.subset(label_budget(bloodcells, per_class=2, seed=0).labelled), 32).unlabeled()


@pytest.fixture(scope="session")
def data_env(bloodcells: ImageData) -> dict[str, str]:
    """Environment of a subprocess reading the real data files, W&B off."""
    return os.environ | {"MEDFEW_DATA": str(DATA_DIR), "WANDB_MODE": "disabled"}


def kill_when(command: list[str], env: dict[str, str], ready: Callable[[], bool], timeout: float = 180) -> None:
    """Start ``command``, SIGKILL it as soon as ``ready()`` is true; fail if it ended first."""
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while not ready() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"


def run_ok(command: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``command`` from the repository root; fail with its stderr tail unless it succeeds."""
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture(scope="session")
def scripts() -> SimpleNamespace:
    """``kill_when`` and ``run_ok``, and ``python`` (this interpreter), for subprocess tests."""
    return SimpleNamespace(kill_when=kill_when, run_ok=run_ok, python=sys.executable)

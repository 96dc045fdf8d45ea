"""A tiny MAML comparison (learn2learn, a Lightning Trainer, an offline W&B run) in a subprocess:
quiet by default, everything with verbose."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

#: the script calls configure_console as the entry point does, before anything imports learn2learn
SCRIPT = """
import sys
from medfew.console import configure_console
configure_console(verbose=sys.argv[1] == "verbose")
from medfew.cli import run
sys.argv = ["medfew run", *sys.argv[2:]]
run()
"""
CHATTER = [
    "Gym has been unmaintained",  # gym's import notice (learn2learn imports gym)
    "GPU available:",
    "TPU available:",
    "💡 Tip:",  # Lightning's litlogger advert
    "`Trainer.fit` stopped: `max_epochs=1` reached",
    "`isinstance(treespec, LeafSpec)` is deprecated",  # a FutureWarning from Lightning's internals
    "wandb: Tracking run with wandb",
]
#: known chatter next to lines of the same loggers and categories that must still show
MIXED = """
import logging, warnings
from medfew.console import configure_console
configure_console()
logging.basicConfig(level=logging.INFO)
import learn2learn
from pytorch_lightning.utilities.rank_zero import rank_zero_info
rank_zero_info("GPU available: False, used: False")
rank_zero_info("Restoring states from the checkpoint path at last.ckpt")
warnings.warn_explicit("`isinstance(treespec, LeafSpec)` is deprecated", FutureWarning, "_pytree.py", 21, "pytorch_lightning.utilities._pytree")
warnings.warn_explicit("`isinstance(treespec, LeafSpec)` is deprecated", FutureWarning, "mine.py", 1, "medfew.mine")
warnings.warn("another FutureWarning", FutureWarning)
logging.getLogger("medfew.check").warning("a medfew warning")
"""
OWN_LINES = ["[medfew.tracking][INFO] - W&B run", "[medfew.evaluation.compare][INFO] - maml", "| maml |"]


def console_of(verbose: bool, data_dir: Path, out: Path) -> str:
    overrides = [
        "experiment=bloodcells_fewshot", "debug=smoke", "learners=[maml]", "protocol.shots=[1]", "logger=wandb",
        f"verbose={str(verbose).lower()}", f"hydra.run.dir={out}", f"paths.data_dir={data_dir}",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "WANDB_SILENT"}  # W&B's lines show unless configure_console hides them
    env |= {"WANDB_MODE": "offline", "WANDB_DATA_DIR": str(out / "wandb-data")}
    args = [sys.executable, "-c", SCRIPT, "verbose" if verbose else "quiet", *overrides]
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600, cwd=Path(__file__).parents[1])
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout + done.stderr


def test_only_the_known_lines_are_hidden():
    done = subprocess.run([sys.executable, "-c", MIXED], capture_output=True, text=True, timeout=300, check=True)
    console = done.stdout + done.stderr
    assert "Gym has been unmaintained" not in console and "GPU available" not in console, console
    assert console.count("LeafSpec") == 1 and "mine.py:1: FutureWarning" in console, console
    for kept in ("Restoring states from the checkpoint", "another FutureWarning", "a medfew warning"):
        assert kept in console, console


@pytest.mark.slow
@pytest.mark.parametrize("verbose", [False, True], ids=["quiet", "verbose"])
def test_console_hides_known_chatter_unless_verbose(verbose, shared_file, tmp_path: Path):
    console = console_of(verbose, shared_file("pbc_bloodcells_64.npz").parent, tmp_path)
    shown = [line for line in CHATTER if line in console]
    assert shown == (CHATTER if verbose else []), console
    assert all(line in console for line in OWN_LINES), console

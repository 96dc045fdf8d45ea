"""The installed `medfew` command: every entry point from any folder, and debug=smoke with any backbone."""

import csv
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medfew import apps

ROOT = Path(__file__).resolve().parents[1]
MEDFEW = Path(sys.executable).parent / "medfew"  # the console script of this environment


def test_help_lists_every_command():
    done = subprocess.run([str(MEDFEW), "--help"], capture_output=True, text=True, check=True)
    for command in ("run", "plan", "pretrain", "metatrain", "audit", "fit", "predict", "gather"):
        assert f"  {command} " in done.stdout
    wrong = subprocess.run([str(MEDFEW), "rnu"], capture_output=True, text=True)
    assert wrong.returncode != 0 and "unknown command 'rnu'" in wrong.stderr


def test_help_answers_without_importing_torch():
    """The command line is parsed before anything heavy loads: torch and Lightning come with the command that runs."""
    code = "import sys; from medfew.cli import main; main(['--help']); print([m for m in ('torch', 'pytorch_lightning', 'medfew.apps') if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[-1] == "[]" and "  plan " in done.stdout


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"]])
def test_a_reader_that_stops_early_ends_the_command_quietly(args):
    """`medfew run --help | head`: a closed pipe ends the command with 128 + SIGPIPE and no traceback."""
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line is written
    try:
        done = subprocess.run([str(MEDFEW), *args], stdout=write, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write)
    assert done.returncode == 141 and done.stderr == ""


def test_gather_of_a_folder_without_jobs_is_one_line_naming_it(tmp_path):
    done = subprocess.run([str(MEDFEW), "gather", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 1 and done.stderr.strip() == f"medfew gather: no job results.csv under {tmp_path}; is it a multirun folder of experiments/run.py?"


@pytest.mark.parametrize(
    "name, overrides",
    [
        ("config", ["experiment=bloodcells_fewshot", "learners=[prototype,protonet,finetune]"]),
        ("config", []),
        ("pretrain", []),
        ("metatrain", ["learner=maml"]),
    ],
)
def test_debug_smoke_runs_any_entry_point_with_resnet18(name, overrides, bloodcells, breastmnist, compose_root, tmp_path):
    cfg = compose_root(name, tmp_path, ["backbone=resnet18", "debug=smoke", *overrides])
    assert cfg.smoke and cfg.backbone.name == "resnet18" and cfg.data.image_size == 28
    app = {"config": apps.run, "pretrain": apps.pretrain, "metatrain": apps.metatrain}[name]
    app(cfg)
    assert "- debug=smoke" in (tmp_path / ".hydra" / "overrides.yaml").read_text()  # every command leaves its record
    if name == "pretrain":
        assert (tmp_path / "backbone.safetensors").exists()
    else:  # metatrain scores its one learner like run
        summary = (tmp_path / "summary.md").read_text()
        assert "SMOKE RUN" in summary.splitlines()[2]


def test_pretrain_on_an_unlabeled_folder_reports_the_spread_and_why_no_knn(compose_root, tmp_path, capsys):
    folder = tmp_path / "scans"
    folder.mkdir()
    pixels = np.random.default_rng(0).integers(0, 256, (40, 28, 28), dtype=np.uint8)
    for i, image in enumerate(pixels):
        Image.fromarray(image).save(folder / f"scan{i}.png")
    options = ["data=image_folder", f"data.source.path={folder}", "data.source.labelled=false", "data.name=my_scans"]
    apps.pretrain(compose_root("pretrain", tmp_path / "run", ["debug=smoke", "backbone=conv4", *options]))
    out = capsys.readouterr().out
    assert "pool: 40 images; monitor: 40 pool images, for the collapse signal" in out
    assert "kNN accuracy: not computed: my_scans has no labelled images to hold out" in out
    with (tmp_path / "run" / "knn.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["step"] for r in rows] == ["0", "1"]  # before training, then after its one epoch (debug=smoke: 1 epoch, at most 2 steps)
    assert all(r["knn_acc"] == "" and 0 < float(r["embedding_std"]) < 1 for r in rows)
    assert f"on the monitor: {float(rows[-1]['embedding_std']):.4f} (0: collapsed" in out


@pytest.mark.slow
def test_a_plain_install_runs_from_outside_the_checkout(shared_file, tmp_path):
    """`pip install .` (not editable) into a scratch virtualenv: the configs ship inside the package."""
    scratch = tmp_path / "venv"
    venv.create(scratch, with_pip=True)
    site = next((scratch / "lib").glob("python3*/site-packages"))
    # reuse this environment's dependencies (read-only path entry: its editable medfew finder is not loaded)
    (site / "deps.pth").write_text(next(p for p in sys.path if p.endswith("site-packages")) + "\n")
    pip = [str(scratch / "bin" / "python"), "-m", "pip"]
    # the build uses this environment's setuptools: the old one that venv seeds on Python 3.11 lacks bdist_wheel
    subprocess.run([*pip, "uninstall", "--yes", "--quiet", "setuptools"], check=True, capture_output=True, timeout=120)
    source = tmp_path / "source"  # a copy: building in the checkout would leave build/ there
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".*", "outputs", "build", "*.egg-info", "wandb", "__pycache__"))
    built = subprocess.run([*pip, "install", "--quiet", "--no-deps", "--no-build-isolation", str(source)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = os.environ | {"WANDB_MODE": "offline", "MEDFEW_DATA": str(shared_file("breastmnist.npz").parent)}
    command = [str(scratch / "bin" / "medfew"), "run", "debug=smoke"]  # `make run`'s job, shrunk, W&B offline
    done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    console = (done.stdout + done.stderr).splitlines()
    # one screen besides the plan (an indented block) and the progress (a line per task, no terminal here):
    # a line per learner, the primary table
    plan = [line for line in console if line.startswith("  ")]
    tasks = [line for line in console if "[medfew.evaluation.progress]" in line]
    assert len(tasks) == 12 and len(console) - len(plan) - len(tasks) <= 40, "\n".join(console)
    installed = subprocess.run(
        [str(scratch / "bin" / "python"), "-c", "import medfew; print(medfew.__file__)"], capture_output=True, text=True, cwd=work
    )
    assert str(scratch) in installed.stdout  # the installed copy ran, not the checkout
    summaries = list((work / "outputs").rglob("summary.md"))
    assert len(summaries) == 1 and summaries[0].parent.name.endswith("-smoke")
    assert "logreg_pixels" in done.stdout  # the default learners were found in the shipped configs

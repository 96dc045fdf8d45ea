"""The ``medfew`` command: ``medfew run|plan|pretrain|metatrain|audit|fit|predict|gather [overrides]``.

Each command is a Hydra app over the configs shipped in the package (``pkg://medfew.configs``),
so it works from any folder after ``pip install .``; ``hydra.searchpath=[file:///abs/configs]``
adds a user's own configs (learners, data) beside them. ``gather`` merges the jobs of a sweep
folder into one table. ``experiments/*.py`` call the same apps from a checkout.
"""

from __future__ import annotations

import argparse
import copy
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from medfew.console import configure_console
from medfew.files import check_writable

CONFIGS = "pkg://medfew.configs"
#: command -> (root config, its function in ``medfew.apps``, imported when the command runs: torch and
#: Lightning load then, so that ``medfew --help`` answers at once)
APPS: dict[str, tuple[str, str]] = {
    "run": ("config", "run"),
    "plan": ("config", "plan"),
    "pretrain": ("pretrain", "pretrain"),
    "metatrain": ("metatrain", "metatrain"),
    "audit": ("audit", "audit"),
    "fit": ("fit", "fit"),
    "predict": ("predict", "predict"),
}
USAGE = """usage: medfew {run,plan,pretrain,metatrain,audit,fit,predict} [key=value ...]   (Hydra overrides, --help, --cfg job, -m)
       medfew gather <sweep folder>

  run        compare learners under one protocol (configs: config.yaml)
  plan       what run would do with the same overrides, and how long it would take; scores nothing
  pretrain   self-supervised pretraining, exports a backbone (pretrain.yaml)
  metatrain  meta-train one learner, test on novel classes (metatrain.yaml)
  audit      exact / near-duplicate images across splits (audit.yaml)
  fit        train one learner on the labelled images, write a model bundle (fit.yaml)
  predict    a model bundle applied to new images: predictions.csv, Grad-CAM (predict.yaml)
  gather     merge a sweep's jobs into one comparison table"""


def hydra_app(command: str, argv: Sequence[str] | None = None) -> Callable[[], None]:
    """The Hydra main function of ``command`` (reads overrides from ``sys.argv``).

    ``argv``, the whole command line, is put back into ``sys.argv`` once Hydra has read its
    overrides, so that DDP worker processes (Lightning restarts ``sys.argv``) run the same command.
    """
    config_name, app_name = APPS[command]

    def main(cfg: DictConfig) -> None:
        if argv is not None:
            sys.argv = list(argv)
        configure_console(cfg.get("verbose", False))
        from medfew import apps

        getattr(apps, app_name)(cfg)

    return hydra.main(version_base="1.3", config_path=CONFIGS, config_name=config_name)(main)


class CheckFolder(Callback):
    """Hydra callback (configs/hydra): a run or sweep folder that cannot be written stops the command
    with one line naming it, before Hydra's log file there fails with a traceback."""

    def on_run_start(self, config: DictConfig, config_name: str | None = None, **kwargs: Any) -> None:
        stop_unless_writable(config, "run", config_name)

    def on_multirun_start(self, config: DictConfig, config_name: str | None = None, **kwargs: Any) -> None:
        stop_unless_writable(config, "sweep", config_name)


def stop_unless_writable(config: DictConfig, mode: str, config_name: str | None) -> None:
    """Exit with 'medfew <command>: cannot write to the run folder ...' unless ``hydra.<mode>.dir`` can be written.

    SystemExit, since Hydra turns a callback's exception into a warning and goes on.
    """
    hydra_config = HydraConfig.instance()
    before = hydra_config.cfg
    hydra_config.set_config(copy.deepcopy(config))  # so that ${hydra:...} in the folder's name resolves
    try:
        folder = Path(OmegaConf.select(config, f"hydra.{mode}.dir"))
    finally:
        hydra_config.cfg = before
    try:
        check_writable(folder, f"{mode} folder")
    except OSError as error:
        command = next((f"medfew {name}" for name, (root, _) in APPS.items() if root == config_name), "medfew")
        raise SystemExit(f"{command}: {error.strerror}") from None


def gather(argv: Sequence[str]) -> None:
    from medfew.sweep import gather as gather_sweep

    parser = argparse.ArgumentParser(prog="medfew gather", description="Merge a sweep's job results into one comparison table.")
    parser.add_argument("sweep_dir", type=Path, help="the multirun folder, e.g. outputs/compare/multirun/<run_name>")
    parser.add_argument("--reference", help="the paired tests' reference: a learner, or a gathered label such as 'finetune [backbone=resnet18]'")
    args = parser.parse_args(argv)
    try:
        gather_sweep(args.sweep_dir, reference=args.reference)
    except OSError as error:  # no jobs there, or a folder that cannot be written
        sys.exit(f"medfew gather: {error.strerror or error}")
    except ValueError as error:
        sys.exit(f"medfew gather: {error}")
    print((args.sweep_dir / "summary.md").read_text())


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``medfew`` console script; a reader that stops early (``medfew run --help | head``)
    ends it quietly, with the status 141 a shell gives a command stopped by a closed pipe."""
    try:
        dispatch(argv)
        sys.stdout.flush()
    except BrokenPipeError:
        # Python docs, "Note on SIGPIPE": later writes, and the flush at exit, go to devnull instead
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(128 + signal.SIGPIPE)


def dispatch(argv: Sequence[str] | None = None) -> None:
    """Run the command of ``argv`` (default ``sys.argv[1:]``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return
    command, rest = args[0], args[1:]
    if command == "gather":
        return gather(rest)
    if command not in APPS:
        sys.exit(f"medfew: unknown command '{command}'\n{USAGE}")
    full = list(sys.argv)
    sys.argv = [sys.argv[0], *rest]  # what Hydra parses
    hydra_app(command, full)()


run, plan, pretrain, metatrain, audit, fit, predict = (hydra_app(command) for command in APPS)

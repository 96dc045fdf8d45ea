"""The ``medfew`` command: ``medfew run|pretrain|metatrain|audit|gather [overrides]``.

Each command is a Hydra app over the configs shipped in the package (``pkg://medfew.configs``),
so it works from any folder after ``pip install .``; ``hydra.searchpath=[file:///abs/configs]``
adds a user's own configs (learners, data) beside them. ``gather`` merges the jobs of a sweep
folder into one table. ``experiments/*.py`` call the same apps from a checkout.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from medfew import apps
from medfew.console import configure_console

CONFIGS = "pkg://medfew.configs"
#: command -> (root config, app)
APPS: dict[str, tuple[str, Callable[[DictConfig], Any]]] = {
    "run": ("config", apps.run),
    "pretrain": ("pretrain", apps.pretrain),
    "metatrain": ("metatrain", apps.metatrain),
    "audit": ("audit", apps.audit),
}
USAGE = """usage: medfew {run,pretrain,metatrain,audit} [key=value ...]   (Hydra overrides, --help, --cfg job, -m)
       medfew gather <sweep folder>

  run        compare learners under one protocol (configs: config.yaml)
  pretrain   self-supervised pretraining, exports a backbone (pretrain.yaml)
  metatrain  meta-train one learner, test on novel classes (metatrain.yaml)
  audit      exact / near-duplicate images across splits (audit.yaml)
  gather     merge a sweep's jobs into one comparison table"""


def hydra_app(command: str, argv: Sequence[str] | None = None) -> Callable[[], None]:
    """The Hydra main function of ``command`` (reads overrides from ``sys.argv``).

    ``argv``, the whole command line, is put back into ``sys.argv`` once Hydra has read its
    overrides, so that DDP worker processes (Lightning restarts ``sys.argv``) run the same command.
    """
    config_name, app = APPS[command]

    def main(cfg: DictConfig) -> None:
        if argv is not None:
            sys.argv = list(argv)
        configure_console(cfg.get("verbose", False))
        app(cfg)

    return hydra.main(version_base="1.3", config_path=CONFIGS, config_name=config_name)(main)


def gather(argv: Sequence[str]) -> None:
    from medfew.sweep import gather as gather_sweep

    parser = argparse.ArgumentParser(prog="medfew gather", description="Merge a sweep's job results into one comparison table.")
    parser.add_argument("sweep_dir", type=Path, help="the multirun folder, e.g. outputs/compare/multirun/<run_name>")
    parser.add_argument("--reference", help="the paired tests' reference: a learner, or a gathered label such as 'finetune [backbone=resnet18]'")
    args = parser.parse_args(argv)
    try:
        gather_sweep(args.sweep_dir, reference=args.reference)
    except (FileNotFoundError, ValueError) as error:
        sys.exit(f"medfew gather: {error}")
    print((args.sweep_dir / "summary.md").read_text())


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``medfew`` console script."""
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


run, pretrain, metatrain, audit = (hydra_app(command) for command in APPS)

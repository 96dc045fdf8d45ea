"""Gather the jobs of a multirun into one comparison table: ``python experiments/gather.py <sweep dir>``.

A multirun of experiments/run.py does this by itself when it ends (``medfew.sweep.GatherSweep``
in configs/hydra/default.yaml); run this script after jobs launched elsewhere (e.g. on a
cluster with the submitit launcher) finish, or after rerunning some of them. Writes
results.csv, summary.md, summary.json and plots into the sweep folder and prints summary.md.
"""

import argparse
from pathlib import Path

from medfew.sweep import gather


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, help="the multirun folder, e.g. outputs/compare/multirun/breastmnist-label_budget")
    sweep_dir = parser.parse_args().sweep_dir
    gather(sweep_dir)
    print((sweep_dir / "summary.md").read_text())


if __name__ == "__main__":
    main()

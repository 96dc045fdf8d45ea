"""Gather the jobs of a multirun into one comparison table: ``python experiments/gather.py <sweep dir>``
(= ``medfew gather``).

A multirun of experiments/run.py does this by itself when it ends (``medfew.sweep.GatherSweep``
in configs/hydra/default.yaml); run this script after jobs launched elsewhere (e.g. on a
cluster with the submitit launcher) finish, or after rerunning some of them. Writes
results.csv, summary.md, summary.json and plots into the sweep folder and prints summary.md.
"""

import sys

from medfew.cli import gather

if __name__ == "__main__":
    gather(sys.argv[1:])

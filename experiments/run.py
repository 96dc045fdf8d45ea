"""Compare learners under one protocol: ``python experiments/run.py [overrides]`` (= ``medfew run``).

Writes results.csv, summary.md, summary.json, plots and the resolved config into the run
folder (outputs/compare/<data>-<protocol>/); rerunning the same command resumes.
"""

from medfew.cli import run

if __name__ == "__main__":
    run()

"""Compare learners under one protocol: ``python experiments/run.py [overrides]``.

Writes results.csv, summary.md, summary.json, plots and the resolved config into the run
folder (outputs/compare/<data>-<protocol>/); rerunning the same command resumes.
"""

from pathlib import Path

import hydra
from omegaconf import DictConfig

from medfew.evaluation import compare


@hydra.main(version_base="1.3", config_path="../configs", config_name="config")
def main(cfg: DictConfig) -> None:
    compare(cfg)
    print((Path(cfg.paths.output_dir) / "summary.md").read_text())


if __name__ == "__main__":
    main()

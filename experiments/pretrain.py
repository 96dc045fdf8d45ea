"""Self-supervised pretraining: ``python experiments/pretrain.py [overrides]``.

The pool is the train split without labels (all images when there are no splits) minus a
small labelled monitor split, whose kNN accuracy is logged after every epoch. Writes the
exported backbone, checkpoints, knn.csv and the resolved config into the run folder
(outputs/pretrain/<data>-<ssl>-<backbone>-seed<seed>/); the same command resumes.
"""

from pathlib import Path

import hydra
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import CSVLogger, WandbLogger

from medfew.data import preprocess
from medfew.models import load_backbone
from medfew.ssl import knn_accuracy, pool_and_monitor
from medfew.ssl.monitor import halves


def train(cfg: DictConfig) -> Path:
    """Build data, pool, monitor and loggers from ``cfg``; return the export path."""
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, out / "config.yaml", resolve=True)
    data = preprocess(instantiate(cfg.data.source), cfg.data.image_size, cfg.data.channels)
    pool, monitor = pool_and_monitor(data, cfg.monitor_per_class, cfg.seed)
    if cfg.max_images is not None and cfg.max_images < len(pool):
        generator = torch.Generator().manual_seed(cfg.seed)
        pool = pool.subset(torch.randperm(len(pool), generator=generator)[: cfg.max_images])
    loggers = [CSVLogger(out, name="logs")]
    run = instantiate(cfg.logger, _partial_=True)(config=OmegaConf.to_container(cfg, resolve=True))
    if run is not None:
        loggers.append(WandbLogger(experiment=run))
    export = instantiate(cfg.ssl)(pool, out, cfg.seed, monitor=monitor, logger=loggers)
    bank, query = halves(monitor)
    print(f"pool: {len(pool)} images; monitor: {len(monitor)} labelled")
    accuracy = knn_accuracy(load_backbone(export), bank, query, cfg.ssl.knn_k)
    print(f"kNN accuracy of the exported backbone on the monitor split: {accuracy:.3f}")
    print(f"export: {export}")
    return export


@hydra.main(version_base="1.3", config_path="../configs", config_name="pretrain")
def main(cfg: DictConfig) -> None:
    train(cfg)


if __name__ == "__main__":
    main()

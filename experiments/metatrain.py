"""Meta-train one learner and score it on novel classes: ``python experiments/metatrain.py [overrides]``.

    python experiments/metatrain.py learner=protonet            # PBC base -> novel classes
    python experiments/metatrain.py learner=maml learner.meta_train_steps=200
    python experiments/metatrain.py experiment=metatrain_crossdomain  # PBC + MRI -> chest X-ray

Checkpoints and metrics land in the run folder (outputs/metatrain/<data>-<learner>-seed<s>/);
running the same command again resumes meta-training. Prints and writes ``results.json``:
accuracy mean ± 95% CI over the novel-class episodes for every shot count.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities.rank_zero import rank_zero_only

from medfew.data import ImageData, class_split
from medfew.data.episodes import EpisodeSet
from medfew.evaluation import mean_ci
from medfew.evaluation.compare import load_data
from medfew.learners import Learner, PrepareContext


def splits(cfg: DictConfig) -> dict[str, ImageData]:
    """base / val classes to meta-train on and the novel classes to test on."""
    data = load_data(cfg.data)
    if cfg.meta_train.data is None:
        if not cfg.data.get("class_split"):
            raise ValueError(f"data '{cfg.data.name}' has no class_split; give one, or meta_train.data + class_split")
        return class_split(data.class_names, **cfg.data.class_split, seed=cfg.seed).apply(data)
    source: ImageData = instantiate(cfg.meta_train.data)
    parts = class_split(source.class_names, **cfg.meta_train.class_split, seed=cfg.seed).apply(source)
    return {"base": parts["base"], "val": parts.get("val"), "novel": data}


def accuracy(learner: Learner, episodes: EpisodeSet) -> list[float]:
    device = next(learner.parameters()).device
    scores = []
    with torch.no_grad():
        for episode in episodes:
            state = learner.adapt(episode.support.to(device), episode.support_labels.to(device))
            probs = learner.predict(state, episode.query.to(device))
            scores.append(float((probs.argmax(dim=-1).cpu() == episode.query_labels).float().mean()))
    return scores


def metatrain(cfg: DictConfig) -> dict[str, Any]:
    """Meta-train ``cfg.learner`` on base classes; accuracy on novel-class episodes per shot."""
    out = Path(cfg.paths.output_dir)
    parts = splits(cfg)
    run = instantiate(cfg.logger, _partial_=True)(config=OmegaConf.to_container(cfg, resolve=True))
    torch.manual_seed(cfg.seed)
    learner: Learner = instantiate(cfg.learner)
    context = PrepareContext(out / "learner", seed=cfg.seed, base=parts["base"], val=parts.get("val"), logger=run)
    learner.prepare(context)
    if rank_zero_only.rank != 0:  # under DDP (trainer=ddp) the other processes only helped meta-train
        if run is not None:
            run.finish()
        return {}
    learner.to("cuda" if torch.cuda.is_available() else "cpu")
    novel, test = parts["novel"], cfg.test
    results: dict[str, Any] = {"learner": cfg.learner._target_, "novel": list(novel.class_names)}
    for shots in test.shots:
        episodes = EpisodeSet.draw(
            novel, test.n_way or novel.n_classes, shots, test.n_query, test.n_episodes, seed=test.episode_seed
        )
        estimate = mean_ci(accuracy(learner, episodes))
        results[f"{shots}-shot"] = dict(acc=estimate.mean, ci95=estimate.half_width, episodes=estimate.n, hash=episodes.hash)
        print(f"{shots}-shot novel accuracy: {estimate.mean:.4f} ± {estimate.half_width:.4f} "
              f"({estimate.n} episodes, set {episodes.hash})")
    (out / "results.json").write_text(json.dumps(results, indent=2))
    if run is not None:
        run.summary.update({f"test/{k}/acc": v["acc"] for k, v in results.items() if k.endswith("shot")})
        run.finish()
    return results


@hydra.main(version_base="1.3", config_path="../configs", config_name="metatrain")
def main(cfg: DictConfig) -> None:
    metatrain(cfg)


if __name__ == "__main__":
    main()

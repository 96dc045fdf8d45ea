"""One comparison: every listed learner under one protocol, for every seed and setting.

For each learner (found by name, see ``medfew.learners.registry``) and seed, a fresh
learner is instantiated with that seed, prepared on what the protocol allows (once per
seed when the protocol's context does not depend on the setting, else once per setting)
and scored on the protocol's tasks. SSL pretraining runs once per pool, seed and settings
in ``<paths.cache_dir>/ssl`` (default ``<out>/cache``; runs naming one folder share it),
however many learners and settings ask for it. Rows go to ``results.csv`` as each block
finishes and at least once a minute within one; tasks already there (same learner config
hash, setting, seed, split hash and episode) are skipped, so rerunning the same command
resumes an interrupted comparison where it stopped (and reuses finished pretraining and
meta-training checkpoints).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import replace
from itertools import chain
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from medfew.data.dataset import ImageData
from medfew.data.preprocess import preprocess
from medfew.evaluation.leakage import screen_leakage
from medfew.evaluation.metrics import check_probabilities, classification_metrics, confusion_matrix, per_class_accuracy
from medfew.evaluation.protocols import Protocol, Task, short_hash
from medfew.evaluation.report import summary_frames, write_report
from medfew.evaluation.results import ResultsFile, row_key
from medfew.learners.base import Learner, PrepareContext
from medfew.learners.registry import with_learner

log = logging.getLogger(__name__)
SAVE_EVERY_S = 60.0  # a killed run loses at most this much scoring


def compare(cfg: DictConfig) -> dict[str, Any]:
    """Run the comparison described by the root config; returns the summary (also written)."""
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config_resolved.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    device = resolve_device(cfg.device)
    data = screen_leakage(load_data(cfg.data), cfg.leakage.check, cfg.leakage.threshold, out)
    protocol: Protocol = instantiate(cfg.protocol, _partial_=True)(data=data)  # keep data an object
    results = ResultsFile(out / "results.csv")
    run = instantiate(cfg.logger, _partial_=True)(config=OmegaConf.to_container(cfg, resolve=True))
    current = {name: run_learner(cfg, name, protocol, results, device, out, run) for name in cfg.learners}
    rows = [row for row in results.read() if current.get(row["learner"]) == row["learner_hash"]]
    summary = write_report(rows, out, **cfg.report)
    if run is not None:
        log_to_wandb(run, summary, out)
    return summary


def resolve_device(device: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; anything else as given."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_data(data_cfg: DictConfig) -> ImageData:
    """The dataset of ``data_cfg.source`` at ``image_size`` and ``channels``."""
    return preprocess(instantiate(data_cfg.source), data_cfg.image_size, data_cfg.channels)


def searchpath() -> list[str]:
    """The running Hydra app's extra config roots (``hydra.searchpath``), for learner lookup."""
    return list(HydraConfig.get().searchpath) if HydraConfig.initialized() else []


def run_learner(
    cfg: DictConfig, name: str, protocol: Protocol, results: ResultsFile, device: torch.device, out: Path, run: Any = None
) -> str:
    """Score learner ``name`` on every (seed, setting, task) not yet in ``results``; returns its config hash.

    ``run`` (a W&B run or None) reaches ``prepare`` as ``context.logger``.
    """
    learner_cfg = with_learner(cfg, name, cfg.learner_overrides.get(name), searchpath()).learner
    learner_hash = short_hash(OmegaConf.to_yaml(learner_cfg, resolve=True))
    workdir = out / "work" / f"{name}-{learner_hash}"
    scored = results.scored()
    for seed in cfg.seeds:
        learner = None
        for setting in protocol.settings():
            identity = dict(
                dataset=cfg.data.name, protocol=protocol.name, learner=name, learner_hash=learner_hash,
                setting=setting.name, kind=setting.kind, value=setting.value, seed=seed,
                split_hash=protocol.split_hash(setting, seed),
            )  # fmt: skip
            resumed = scored.get(row_key(identity), set())
            todo = (task for task in protocol.tasks(setting, seed, device) if str(task.episode) not in resumed)
            first = next(todo, None)
            if first is None:
                log.info("%s %s seed %d: already in %s, skipped", name, setting.name, seed, results.path)
                continue
            if learner is None or not protocol.shares_prepare:
                context = replace(protocol.context(setting, seed, workdir), logger=run, cache=Path(cfg.paths.cache_dir))
                learner = build_learner(learner_cfg, name, context, device)
            rows = score_tasks(learner, name, chain([first], todo), identity, results)
            log.info(
                "%s %s seed %d: bal_acc %.3f over %d tasks%s", name, setting.name, seed, mean(rows, "bal_acc"), len(rows),
                f" (and {len(resumed)} scored before, kept)" if resumed else "",
            )  # fmt: skip
    return learner_hash


def score_tasks(
    learner: Learner, name: str, tasks: Iterable[Task], identity: dict[str, Any], results: ResultsFile
) -> list[dict[str, Any]]:
    """Score ``tasks``; rows reach ``results`` at least every ``SAVE_EVERY_S`` seconds and at the end."""
    rows, unsaved, saved_at = [], [], time.monotonic()
    for task in tasks:
        unsaved.append(identity | score(learner, name, task, identity["seed"]))
        if time.monotonic() - saved_at >= SAVE_EVERY_S:
            results.append(unsaved)
            rows, unsaved, saved_at = rows + unsaved, [], time.monotonic()
    if unsaved:
        results.append(unsaved)
    return rows + unsaved


def build_learner(learner_cfg: DictConfig, name: str, context: PrepareContext, device: torch.device) -> Learner:
    """A fresh learner seeded by ``context.seed``, prepared on ``context``, on ``device``."""
    torch.manual_seed(context.seed)
    learner = instantiate(learner_cfg)
    if not isinstance(learner, Learner):
        raise TypeError(f"learner '{name}': {learner_cfg._target_} built a {type(learner).__name__}, not a medfew Learner")
    learner.to(device).prepare(context)
    return learner.to(device)


def score(learner: Learner, name: str, task: Task, seed: int) -> dict[str, Any]:
    """Adapt on the task's support set, predict its query set; metrics and timings of one row."""
    torch.manual_seed(seed * 100_003 + task.episode)  # same draws whether resumed or not
    start = time.perf_counter()
    probs = learner.predict(learner.adapt(task.support, task.support_labels, task.val), task.query)
    seconds = time.perf_counter() - start
    n_way = len(task.classes)
    check_probabilities(probs, len(task.query), n_way, name)
    per_class = per_class_accuracy(probs, task.query_labels).tolist()
    return dict(
        episode=task.episode,
        n_way=n_way,
        n_support=len(task.support),
        n_query=len(task.query),
        **classification_metrics(probs, task.query_labels),
        seconds=round(seconds, 3),
        per_class_acc=json.dumps(dict(zip(task.classes, per_class))),
        confusion=json.dumps({"classes": task.classes, "counts": confusion_matrix(probs, task.query_labels).tolist()}),
    )


def mean(rows: list[dict[str, Any]], key: str) -> float:
    return sum(float(r[key]) for r in rows) / len(rows)


def log_to_wandb(run: Any, summary: dict[str, Any], out: Path) -> None:
    """The summary tables, the result rows and the plots into the W&B ``run``, which then finishes."""
    import pandas as pd
    import wandb

    tables = {f"summary/{metric}": wandb.Table(dataframe=frame) for metric, frame in summary_frames(summary).items()}
    tables["results"] = wandb.Table(dataframe=pd.read_csv(out / "results.csv"))
    images = {f"plots/{path.stem}": wandb.Image(str(path)) for path in sorted(out.glob("*.png"))}
    run.log(tables | images)
    run.finish()

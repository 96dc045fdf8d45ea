"""What one step of each training stage costs here: a few real steps, timed.

Every learner's stages are run for a few steps on the first fold and seed, with the run's own
data, backbone, image size, precision, device and threads, in a temporary folder: SSL pretraining
(``pretrain`` with a step budget of ``PROBE_STEPS``), base training, meta-training (two short
epochs, so that the validation at each epoch end is timed too) and one task per setting
(adapt + predict with 0, 1 and ``1 + PROBE_STEPS`` fine-tuning steps, the backbone untrained:
a step costs the same). Learners whose per-task settings are the same share one measurement.
Nothing here is cached: the numbers describe this machine now, its load included.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import logging
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from medfew.evaluation.folds import Fold
from medfew.learners.base import Learner, PrepareContext

PROBE_STEPS = 4  # timed steps of each stage, after one warm-up step
STAGE_KEYS = ("pretrain", "base_training", "meta_training")  # a learner's settings that are training stages
STAGE_LOGS = ("medfew.ssl.pretrain", "medfew.fewshot.meta_training")  # the loggers of their start / end lines


@dataclasses.dataclass(frozen=True)
class Rate:
    """The measured cost of a stage: seconds per step (what a per-epoch check costs included) and per run besides its steps."""

    step_s: float
    fixed_s: float = 0.0


class StepTimer(pl.Callback):
    """Records (epoch, time) at the end of every training batch."""

    def __init__(self) -> None:
        self.ends: list[tuple[int, float]] = []

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.ends.append((trainer.current_epoch, time.perf_counter()))

    def rates(self) -> tuple[float, float]:
        """(median seconds per step within an epoch, mean extra seconds between two epochs), the first step left out."""
        gaps = [(e1 == e2, b - a) for (e1, a), (e2, b) in zip(self.ends[1:], self.ends[2:])]
        within = [gap for same, gap in gaps if same] or [gap for _, gap in gaps]
        step = statistics.median(within) if within else 0.0
        across = [gap - step for same, gap in gaps if not same]
        return step, max(0.0, statistics.fmean(across)) if across else 0.0


def timed(run: Callable[[], Any]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def probe_trainer(trainer: Any, timer: StepTimer) -> dict[str, Any]:
    """Lightning settings of a probe: the run's own (precision, accelerator), one device, nothing shown."""
    kwargs = dict(trainer or {})
    kwargs.update(devices=1, strategy="auto", enable_progress_bar=False, callbacks=[timer])
    kwargs.pop("limit_train_batches", None)
    return kwargs


def ssl_rate(pretrain: Any, context: PrepareContext, folder: Path) -> Rate:
    """SSL cost on ``context.unlabeled``: steps timed in a short run, and per epoch its monitor's check and checkpoint."""
    from medfew.ssl.monitor import SPREAD_SAMPLE, monitor_parts, monitor_scores

    pool, keywords, timer = context.unlabeled, pretrain.keywords, StepTimer()
    options = dict(steps=1 + PROBE_STEPS, epochs=None, warmup_steps=0, patience=None, cache=None, monitor=None)
    wall = timed(lambda: pretrain(pool, folder, context.seed, trainer=probe_trainer(keywords.get("trainer"), timer), **options))
    step, epoch = timer.rates()
    monitor = context.monitor
    if monitor is None and keywords.get("patience") is not None:
        monitor = pool.subset(torch.arange(min(len(pool), SPREAD_SAMPLE)))
    if monitor is not None:
        backbone = keywords["backbone"]()
        epoch += timed(lambda: monitor_scores(backbone, monitor_parts(monitor), keywords.get("knn_k", 20)))
    per_epoch = max(1, len(pool) // keywords.get("batch_size", 128))
    return Rate(step + epoch / per_epoch, max(0.0, wall - (1 + PROBE_STEPS) * step))


def base_training_rate(recipe: Any, learner: Learner, context: PrepareContext) -> Rate:
    """Base-training cost: 1 step (warm-up), 1 step again, then ``1 + PROBE_STEPS``: their difference is the steps'."""
    runs = [timed(lambda n=n: dataclasses.replace(recipe, steps=n).fit(learner, context)) for n in (1, 1, 1 + PROBE_STEPS)]
    step = max(0.0, (runs[2] - runs[1]) / PROBE_STEPS)
    return Rate(step, max(0.0, runs[1] - step))


def meta_training_rate(recipe: Any, learner: Learner, context: PrepareContext) -> Rate:
    """Meta-training cost: two epochs of ``PROBE_STEPS`` steps with 2 val episodes each; the gap between the epochs
    prices a val episode, and the recipe's ``val_episodes`` per ``steps_per_epoch`` are added to each step."""
    timer, val_episodes = StepTimer(), 2
    short = dataclasses.replace(
        recipe, steps_per_epoch=PROBE_STEPS, val_episodes=val_episodes, trainer=probe_trainer(recipe.trainer, timer)
    )
    wall = timed(lambda: short.fit(learner, context, 2 * PROBE_STEPS))
    step, epoch = timer.rates()
    per_step = step + (epoch / val_episodes * recipe.val_episodes / recipe.steps_per_epoch if context.val is not None else 0.0)
    return Rate(per_step, max(0.0, wall - 2 * PROBE_STEPS * step - epoch))


def task_rate(build: Callable[[int | None], Learner], fold: Fold, setting: Any, seed: int, device: torch.device, steps: bool) -> Rate:
    """One task of ``setting``: adapt + predict with 1 step (warm-up), 0 steps (the fixed cost) and
    ``1 + PROBE_STEPS`` steps; a learner without fine-tuning ``steps`` is timed once, all fixed."""
    task = next(iter(fold.protocol.tasks(setting, seed, device)))

    def once(n: int | None) -> float:
        learner = build(n)
        torch.manual_seed(seed)
        return timed(lambda: learner.predict(learner.adapt(task.support, task.support_labels, task.val), task.query))

    if not steps:
        return Rate(0.0, once(None))
    once(1)
    fixed = once(0)
    return Rate(max(0.0, (once(1 + PROBE_STEPS) - fixed) / (1 + PROBE_STEPS)), fixed)


def without_stages(learner_cfg: DictConfig) -> DictConfig:
    """A copy of a learner's settings with its training stages off (the per-task part only), at any depth
    (the member learners of an ensemble too)."""
    stripped = copy.deepcopy(learner_cfg)
    nodes = [stripped]
    while nodes:
        node = nodes.pop()
        with open_dict(node):
            for key in STAGE_KEYS:
                if key in node:
                    node[key] = None
            if "meta_train_steps" in node:
                node.meta_train_steps = 0
        nodes += [child for key in node if isinstance(child := node._get_node(key), DictConfig) and not child._is_none() and not child._is_interpolation()]
    return stripped


def build(learner_cfg: DictConfig, context: PrepareContext, device: torch.device, steps: int | None = None, prepare: bool = True) -> Learner:
    """The learner of ``learner_cfg`` (fine-tuning ``steps`` when given) on ``device``, prepared on ``context``
    (which leaves it in eval mode) unless ``prepare`` is False: a stage to time then trains it as ``prepare`` would."""
    node = copy.deepcopy(learner_cfg)
    if steps is not None:
        node.steps = steps
    torch.manual_seed(context.seed)
    learner = instantiate(node).to(device)
    if prepare:
        learner.prepare(context)
    return learner.to(device)


@contextlib.contextmanager
def quiet_stages() -> Iterator[None]:
    """Hold back the start / end lines of the stages (``STAGE_LOGS``) while probing them."""
    loggers = [logging.getLogger(name) for name in STAGE_LOGS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def measure(learners: dict[str, DictConfig], fold: Fold, seed: int, device: torch.device) -> dict[str, dict[str, Rate]]:
    """Per learner (root configs with ``learner``), the Rate of each stage it has: ``ssl``, ``base_training``,
    ``meta_training``, and ``tasks <setting>`` for every setting of ``fold``'s protocol."""
    rates: dict[str, dict[str, Rate]] = {}
    shared: dict[str, Rate] = {}
    settings = fold.protocol.settings()
    with tempfile.TemporaryDirectory(prefix="medfew-plan-") as tmp, quiet_stages():
        for name, node in learners.items():
            learner_cfg, learner_rates = node.learner, {}
            context = dataclasses.replace(fold.protocol.context(settings[0], seed, Path(tmp) / name), cache=None, logger=None)
            plain = without_stages(learner_cfg)
            if learner_cfg.get("pretrain") is not None:
                key = "ssl " + json.dumps(OmegaConf.to_container(learner_cfg.pretrain, resolve=True), sort_keys=True, default=str)
                if key not in shared:
                    shared[key] = ssl_rate(instantiate(learner_cfg.pretrain), context, Path(tmp) / name / "ssl")
                learner_rates["ssl"] = shared[key]
            if learner_cfg.get("base_training") is not None:
                learner = build(plain, context, device, prepare=False)
                learner_rates["base_training"] = base_training_rate(instantiate(learner_cfg.base_training), learner, context)
            if learner_cfg.get("meta_train_steps") and learner_cfg.get("meta_training") is not None:
                meta_context = dataclasses.replace(context, workdir=Path(tmp) / name / "meta")
                learner = build(plain, context, device, prepare=False)
                learner_rates["meta_training"] = meta_training_rate(instantiate(learner_cfg.meta_training), learner, meta_context)
            steps = bool(plain.get("steps"))
            for setting in settings:
                key = f"tasks {setting.name} " + json.dumps(OmegaConf.to_container(plain, resolve=True), sort_keys=True, default=str)
                if key not in shared:
                    shared[key] = task_rate(lambda n: build(plain, context, device, n), fold, setting, seed, device, steps)
                learner_rates[f"tasks {setting.name}"] = shared[key]
            rates[name] = learner_rates
    return rates

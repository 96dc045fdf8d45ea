"""The plan of a comparison: per learner its tasks, its training stages and their estimated time.

A learner is prepared once per fold and seed (once per setting too when the protocol's context
depends on it) wherever tasks remain to be scored. A preparation runs the learner's stages: SSL
pretraining, counted once per distinct run (the SSL cache in ``paths.cache_dir`` shares a run
between learners, settings and, with ``unlabeled_pool=all``, folds; a run already there costs
nothing), base training and meta-training; then each task fine-tunes for ``steps`` and predicts.
A stage's time is its steps times the measured cost of one (``medfew.evaluation.costs.Rate``) plus
a fixed cost per run: the most it takes, since early stopping ends fine-tuning and SSL sooner.

``fit_to_limit`` shrinks the plan to a time limit in a fixed order (``ORDER``): the SSL step budget
first, down to its floor, then the fine-tuning, base-training and meta-training steps, then the
episodes; a budget at or below its floor is never changed and nothing is dropped.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from medfew.console import duration
from medfew.evaluation.costs import Rate
from medfew.evaluation.folds import Fold

#: the budgets a time limit scales, in the order it scales them (knob names, as in ``knobs``; the step knobs are
#: also their paths in a learner's settings, and ``episodes`` the root key)
ORDER = (("pretrain.steps",), ("steps", "base_training.steps", "meta_train_steps"), ("episodes",))
STAGE_NAMES = {"ssl": "SSL pretraining", "base_training": "base training", "meta_training": "meta-training"}


@dataclass(frozen=True)
class Stage:
    """Runs of one kind of work still to do: the steps of each run, the measured ``rate``, and the knob
    that sets those steps (None: not scaled). ``note`` says what is reused rather than run."""

    name: str
    knob: str | None
    steps: tuple[int, ...]
    rate: Rate
    note: str = ""
    group: str = ""  # stages of one group share their runs and are scaled alike (SSL: the same settings); "": the learner's own

    @property
    def seconds(self) -> float:
        return sum(self.steps) * self.rate.step_s + len(self.steps) * self.rate.fixed_s

    def capped(self, cap: int) -> Stage:
        return replace(self, steps=tuple(min(s, cap) for s in self.steps))

    def line(self) -> str:
        runs, note = len(self.steps), f" ({self.note})" if self.note else ""
        if not runs:
            return f"{self.name}: nothing to run{note}"
        most = max(self.steps)
        each = f"{most:,} steps x {self.rate.step_s:.3g} s + {self.rate.fixed_s:.2g} s" if most else f"{self.rate.fixed_s:.2g} s"
        return f"{self.name}: {runs:,} x ({each}) = {duration(self.seconds)}{note}"


@dataclass(frozen=True)
class LearnerPlan:
    name: str
    tasks: int  # tasks left to score
    scored: int  # tasks already in results.csv
    stages: tuple[Stage, ...]

    @property
    def seconds(self) -> float:
        return sum(stage.seconds for stage in self.stages)


@dataclass(frozen=True)
class Plan:
    """Every learner's plan, the run's shape ('1 fold x 3 seeds x 3 settings') and where it runs."""

    learners: tuple[LearnerPlan, ...]
    shape: str
    machine: str
    episodes: int | None = None  # episodes per setting (the episodes protocol), which a time limit may scale
    scaled: dict[str, Any] = field(default_factory=dict)  # what a time limit changed (``scaling``)
    setup_s: float = 0.0  # spent before the plan was made: loading and checking the data, timing the steps

    @property
    def seconds(self) -> float:
        """The learners' work still to do."""
        return sum(learner.seconds for learner in self.learners)

    @property
    def total_s(self) -> float:
        return self.setup_s + self.seconds

    def caps(self, knob: str, factor: float, floor: int) -> dict[str, int]:
        """Per learner, the step budget ``factor`` leaves of its ``knob``: the most steps of its stage group times
        ``factor``, at least ``floor`` and at most what it has. Learners sharing a group (one SSL setting) get one
        cap, so that they go on sharing its runs; a group with nothing left to run keeps its budget (its cache)."""
        steps, groups = {}, {}
        for learner in self.learners:
            for stage in learner.stages:
                if stage.knob == knob:
                    groups[learner.name] = stage.group or learner.name
                    steps.setdefault(groups[learner.name], []).extend(stage.steps)
        caps = {}
        for name, group in groups.items():
            if steps[group]:
                most = max(steps[group])
                caps[name] = most if most <= floor else max(floor, round(most * factor))
        return caps

    def shrunk(self, factors: Mapping[str, float], floors: Mapping[str, int]) -> Plan:
        """This plan with each knob of ``factors`` scaled by its factor, down to its floor (``caps``)."""
        caps = {knob: self.caps(knob, factor, floors[knob]) for knob, factor in factors.items() if knob != "episodes"}
        learners = []
        for learner in self.learners:
            stages = list(learner.stages)
            for knob, by_learner in caps.items():
                cap = by_learner.get(learner.name)
                stages = [stage.capped(cap) if cap is not None and stage.knob == knob else stage for stage in stages]
            if "episodes" in factors and self.episodes:
                share = episodes_after(self.episodes, factors["episodes"], floors["episodes"]) / self.episodes
                stages = [replace(s, steps=s.steps[: math.ceil(len(s.steps) * share)]) if s.name.startswith("tasks") else s for s in stages]
            learners.append(replace(learner, stages=tuple(stages)))
        return replace(self, learners=tuple(learners))

    def lines(self) -> list[str]:
        head = f"plan: {self.shape}; {self.machine}"
        lines = [head]
        for learner in self.learners:
            scored = f", {learner.scored} already scored" if learner.scored else ""
            lines.append(f"  {learner.name}: {learner.tasks} tasks{scored}, about {duration(learner.seconds)}")
            lines += [f"    {stage.line()}" for stage in learner.stages if stage.steps or stage.note]
        lines += [f"  scaled to the time limit: {change}" for change in describe_scaling(self.scaled)]
        lines.append(
            f"  estimate: about {duration(self.total_s)} ({duration(self.setup_s)} of it spent loading the data and timing the steps; "
            "the stages at most: early stopping ends some sooner)"
        )
        return lines

    def record(self) -> dict[str, Any]:
        """The estimates as summary.json keeps them (seconds, per learner)."""
        return {
            "estimated_s": round(self.total_s, 1),
            "setup_s": round(self.setup_s, 1),
            "learners": {learner.name: {"estimated_s": round(learner.seconds, 1), "tasks": learner.tasks} for learner in self.learners},
            "scaled": self.scaled,
        }


def episodes_after(episodes: int, factor: float, floor: int) -> int:
    return episodes if episodes <= floor else max(floor, round(episodes * factor))


def preparations(name: str, folds: Sequence[Fold], seeds: Sequence[int], todo: Mapping[tuple, Sequence[int]]) -> tuple[list, Counter]:
    """The (fold, seed, setting) of each preparation learner ``name`` runs, and its tasks left per setting name.

    ``todo[(name, fold, seed, setting)]``: the tasks left of each group of conditions scored together.
    """
    prepares, tasks = [], Counter()
    for fold in folds:
        for seed in seeds:
            first = True
            for setting in fold.protocol.settings():
                for left in todo.get((name, fold.name, seed, setting.name), ()):
                    if not left:
                        continue
                    tasks[setting.name] += left
                    if first or not fold.protocol.shares_prepare:
                        prepares.append((fold, seed, setting))
                        first = False
    return prepares, tasks


def ssl_stage(name: str, pretrain_cfg: DictConfig, prepares: list, rate: Rate, cache: Path, trained: dict[Path, str]) -> Stage:
    """The SSL runs learner ``name`` trains itself: those neither in ``cache`` nor trained by an earlier learner
    (``trained``: export path -> learner, updated here). The cache key comes from ``pretrain(..., dry_run=True)``."""
    from medfew.ssl.pretrain import budget_rule, budget_steps, images_hash

    pretrain, settings = instantiate(pretrain_cfg), OmegaConf.to_container(pretrain_cfg, resolve=True)
    trainer = settings.get("trainer") or {}
    devices = trainer.get("devices") if isinstance(trainer.get("devices"), int) else 1
    budget = budget_rule(settings.get("steps"), settings.get("epochs"))
    steps, cached, shared, seen = [], 0, Counter(), {}
    for fold, seed, setting in prepares:
        context = fold.protocol.context(setting, seed, Path("plan"))
        pool, monitor = context.unlabeled, context.monitor
        key = (images_hash(pool.images), seed, None if monitor is None else images_hash(monitor.images))
        if key not in seen:
            seen[key] = pretrain(pool, Path("plan"), seed, cache=cache, monitor=monitor, dry_run=True)
        export = seen[key]
        if export in trained:
            shared[trained[export]] += 1
        elif export.exists():
            cached += 1
        else:
            trained[export] = name
            steps.append(budget_steps(budget, len(pool), settings["batch_size"], devices, trainer.get("limit_train_batches")))
    reused = [f"{cached} in the cache"] if cached else []
    reused += [f"{count} shared with {other}" if other != name else f"{count} reused by its other settings or folds" for other, count in shared.items()]
    group = "ssl " + json.dumps(settings, sort_keys=True, default=str)
    return Stage(STAGE_NAMES["ssl"], "pretrain.steps", tuple(steps), rate, ", ".join(reused), group)


def learner_plan(
    name: str, learner: DictConfig, folds: Sequence[Fold], seeds: Sequence[int], todo: Mapping[tuple, Sequence[int]],
    scored: int, rates: Mapping[str, Rate], cache: Path, trained: dict[Path, str],
) -> LearnerPlan:
    """The plan of one learner (its settings ``learner``); ``rates``: the measured Rate of each of its stages."""
    prepares, tasks = preparations(name, folds, seeds, todo)
    stages = []
    if learner.get("pretrain") is not None:
        stages.append(ssl_stage(name, learner.pretrain, prepares, rates["ssl"], cache, trained))
    if learner.get("base_training") is not None:
        steps = (learner.base_training.steps,) * len(prepares)
        stages.append(Stage(STAGE_NAMES["base_training"], "base_training.steps", steps, rates["base_training"]))
    if learner.get("meta_train_steps") and learner.get("meta_training") is not None:
        stages.append(Stage(STAGE_NAMES["meta_training"], "meta_train_steps", (learner.meta_train_steps,) * len(prepares), rates["meta_training"]))
    per_task = learner.get("steps") or 0
    for setting in folds[0].protocol.settings():
        if tasks[setting.name]:
            knob = "steps" if per_task else None
            stages.append(Stage(f"tasks {setting.name}", knob, (per_task,) * tasks[setting.name], rates[f"tasks {setting.name}"]))
    return LearnerPlan(name, sum(tasks.values()), scored, tuple(stages))


def fit_to_limit(plan: Plan, limit_s: float, floors: Mapping[str, int]) -> tuple[Plan, dict[str, float]]:
    """The plan scaled to ``limit_s`` in ``ORDER`` and the factor of each knob it scaled (0: at its floor).

    Each group of knobs is scaled only when the groups before it, at their floors, still overrun; within a
    group one factor, the largest that fits (by bisection), scales every knob. The result may still overrun:
    every budget is then at its floor.
    """
    factors: dict[str, float] = {}
    for group in ORDER:
        if plan.shrunk(factors, floors).seconds <= limit_s:
            break
        if plan.shrunk(factors | dict.fromkeys(group, 0.0), floors).seconds > limit_s:
            factors |= dict.fromkeys(group, 0.0)
            continue
        low, high = 0.0, 1.0
        for _ in range(40):
            middle = (low + high) / 2
            fits = plan.shrunk(factors | dict.fromkeys(group, middle), floors).seconds <= limit_s
            low, high = (middle, high) if fits else (low, middle)
        factors |= dict.fromkeys(group, low)
    return plan.shrunk(factors, floors), factors


def scaling(plan: Plan, factors: Mapping[str, float], floors: Mapping[str, int]) -> dict[str, Any]:
    """What ``factors`` change, per learner ``{knob: [before, after]}`` (and ``episodes``), leaving out budgets they keep."""
    changes: dict[str, Any] = {}
    for knob, factor in factors.items():
        if knob == "episodes":
            continue
        before, after = plan.caps(knob, 1.0, floors[knob]), plan.caps(knob, factor, floors[knob])
        for learner in plan.learners:
            if learner.name in after and after[learner.name] != before[learner.name]:
                changes.setdefault(learner.name, {})[knob] = [before[learner.name], after[learner.name]]
    if "episodes" in factors and plan.episodes:
        after = episodes_after(plan.episodes, factors["episodes"], floors["episodes"])
        if after != plan.episodes:
            changes["episodes"] = [plan.episodes, after]
    return changes


def describe_scaling(changes: Mapping[str, Any]) -> list[str]:
    """One line per learner of ``scaling``: 'finetune: steps 500 -> 120 (x0.24)'."""
    lines = []
    for learner, change in changes.items():
        if learner == "episodes":
            lines.append(f"episodes {change[0]} -> {change[1]} per setting")
            continue
        parts = [f"{knob} {before:,} -> {after:,} (x{after / before:.2g})" for knob, (before, after) in change.items()]
        lines.append(f"{learner}: {', '.join(parts)}")
    return lines


def apply_scaling(learners: Mapping[str, DictConfig], changes: Mapping[str, Any]) -> None:
    """Set each learner's scaled budgets (``scaling``) in its settings; meta-training's ``steps_per_epoch``
    shrinks with its steps and the steps round down to a multiple of it (at least one epoch)."""
    for name, change in changes.items():
        if name == "episodes":
            continue
        learner = learners[name].learner
        with open_dict(learner):
            for knob, (_, after) in change.items():
                OmegaConf.update(learner, knob, after, merge=False)
            if "meta_train_steps" in change and learner.get("meta_training") is not None:
                per_epoch = min(learner.meta_training.steps_per_epoch, learner.meta_train_steps)
                learner.meta_training.steps_per_epoch = per_epoch
                learner.meta_train_steps = max(per_epoch, learner.meta_train_steps // per_epoch * per_epoch)


def alone(plan: Plan, names: Sequence[str]) -> float:
    """Seconds of the learners ``names`` run without the others: each stage group they share (an SSL setting) counted
    once, with every run of it, whichever learner the plan has run it."""
    groups = {stage.group for learner in plan.learners if learner.name in names for stage in learner.stages if stage.group}
    own = sum(stage.seconds for learner in plan.learners if learner.name in names for stage in learner.stages if not stage.group)
    return own + sum(stage.seconds for learner in plan.learners for stage in learner.stages if stage.group in groups)


def what_fits(plan: Plan, limit_s: float, seeds: Sequence[int], folds: int) -> list[str]:
    """Smaller runs that would fit ``limit_s`` (every budget at its floor): fewer seeds, fewer learners, one cut."""
    total, options = plan.seconds, []
    per_seed = total / len(seeds)
    if len(seeds) > 1 and per_seed <= limit_s:
        keep = min(len(seeds) - 1, int(limit_s // per_seed))
        options.append(f"seeds=[{','.join(map(str, seeds[:keep]))}] (about {duration(per_seed * keep)})")
    kept, spent = [], 0.0
    for learner in sorted(plan.learners, key=lambda learner: alone(plan, [learner.name])):
        if alone(plan, [*kept, learner.name]) <= limit_s:
            kept.append(learner.name)
            spent = alone(plan, kept)
    if kept and len(kept) < len(plan.learners):
        order = [learner.name for learner in plan.learners if learner.name in kept]
        options.append(f"learners=[{','.join(order)}] (about {duration(spent)})")
    if folds > 1 and total / folds <= limit_s:
        options.append(f"data.split=stratified, one cut instead of {folds} folds (about {duration(total / folds)})")
    return options

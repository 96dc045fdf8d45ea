"""One comparison: every listed learner under one protocol, for every fold, seed and setting.

The data is cut into folds (``medfew.evaluation.folds``: the official split, a stratified
split or k-fold cross-validation). For each fold, learner (found by name, see
``medfew.learners.registry``) and seed, a fresh learner is instantiated with that seed,
prepared on what the protocol allows (once per seed when the protocol's context does not
depend on the setting, else once per setting) and scored on the protocol's tasks. SSL
pretraining runs once per pool, seed and settings in ``<paths.cache_dir>/ssl``. Before the
first task the plan of the run is measured and logged (``medfew.evaluation.plan``): with
``time_limit`` its budgets are scaled to fit, and a run past its limit stops after the task it
is on (``medfew.evaluation.progress``); torch uses ``threads`` threads. Rows go to
``results.csv`` as each block finishes and at least once a minute within one; tasks already
there (same fold fingerprint, learner config hash, setting, seed, split hash and episode) are
skipped, so rerunning the same command resumes where it stopped. A run folder holding results
of other data or other tasks (``check_run_folder``) is refused before anything in it is
rewritten, the command's record (``.hydra/``) included, and one run at a time writes to a
folder (``RunLock``). Rows that cannot be written are kept in a file named in the error.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import replace
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from pytorch_lightning.utilities.rank_zero import rank_zero_only
from tqdm.contrib.logging import logging_redirect_tqdm

from medfew.config import apply_knobs, check_keys, check_seeds, check_training_settings, flat_knobs, record_command
from medfew.console import duration
from medfew.data.dataset import ImageData
from medfew.data.exclusion import exclusion_note
from medfew.data.stratify import describe_groups
from medfew.evaluation.curves import check_target
from medfew.evaluation.folds import Fold, check_image_size, check_run_folder, load_data, make_folds, record, warn_missing_classes
from medfew.evaluation.leakage import leakage_note, warn_label_conflicts
from medfew.evaluation.costs import measure
from medfew.evaluation.metrics import check_probabilities, classification_metrics, confusion_matrix, per_class_accuracy
from medfew.evaluation.plan import ORDER, Plan, apply_scaling, fit_to_limit, learner_plan, scaling, what_fits
from medfew.evaluation.progress import Progress, TimeLimitReached
from medfew.evaluation.protocols import Task
from medfew.evaluation.report import LABELLED, span, summary_table, write_report
from medfew.evaluation.results import ResultsFile, row_key
from medfew.evaluation.robustness import Condition, Robustness
from medfew.files import RunLock, write_json, write_text
from medfew.hashing import content_hash
from medfew.learners.base import Learner, PrepareContext
from medfew.learners.registry import learner_config, with_learner
from medfew.seeding import derive_seed
from medfew.tracking import log_comparison
from medfew.threads import use_threads
from medfew.training import accelerator_device, resolve_precision

log = logging.getLogger(__name__)
SAVE_EVERY_S = 60.0  # a killed run loses at most this much scoring
PLAN_RECORD = "plan.json"  # a run folder's time-limit scaling, reused by a rerun with the same limit
TRANSDUCTIVE = "transductive"  # the summary header's mark of a run whose SSL pool held the test images
POOL_ALL = "SSL pretrained on every image, test images included, without their labels (protocol.unlabeled_pool=all)"


def compare(cfg: DictConfig) -> dict[str, Any]:
    """Run the comparison described by the root config; returns the summary (also written).

    Under DDP (``trainer=ddp``) every process prepares the learners (meta-training, SSL) together;
    only the first scores, writes and reports, and the others return an empty summary.
    """
    out, primary, start = Path(cfg.paths.output_dir), rank_zero_only.rank == 0, time.monotonic()
    with RunLock(out) if primary else contextlib.nullcontext():
        results = ResultsFile(out / "results.csv")
        if primary:
            results.check_writable()  # now, not after hours of scoring that could not be saved
        set_threads(cfg)
        learners = learner_configs(cfg)
        check_seeds(cfg.seeds)
        check_target(cfg.report.get("target"), cfg.report.metrics)  # now, not after the scoring
        check_backbone(cfg)
        data = load_data(cfg.data)
        findings = {"excluded": exclusion_note(cfg.data.get("exclude")), "label conflicts": warn_label_conflicts(data)}
        folds, leakage = make_folds(cfg, data)
        findings["leakage"] = leakage_note(leakage)
        findings["classes missing from test"] = warn_missing_classes(folds)
        plan, folds = plan_run(cfg, data, folds, learners, results, out, start) if primary else (None, folds)
        if plan is not None:
            log.info("%s", "\n".join(plan.lines()))
        settings = {name: OmegaConf.to_container(node.learner, resolve=True) for name, node in learners.items()}
        resolved = OmegaConf.to_container(cfg, resolve=True) | {"learner_settings": settings}
        if primary:  # refused before anything in the folder is rewritten
            check_run_folder(out, record(cfg, folds), results, folds)
            record_command(cfg, out)
            write_text(out / "config_resolved.yaml", OmegaConf.to_yaml(resolved))
            write_json(out / "leakage.json", leakage if len(leakage) > 1 else next(iter(leakage.values())))
        run = instantiate(cfg.logger, _partial_=True)(config=resolved)
        hashes = {name: learner_hash(learner) for name, learner in settings.items()}
        quiet_trainers(cfg, learners)
        total = sum(map(sum, todo_counts(cfg, folds, hashes, results).values()))
        limit_s, walls, stopped = None if cfg.time_limit is None else 60 * cfg.time_limit, {}, ""
        with logging_redirect_tqdm(), Progress(plan, total, start, limit_s, show=primary) as bar:
            try:
                for name, node in learners.items():
                    began = time.monotonic()
                    try:
                        run_learner(cfg, folds, name, node, hashes[name], results, out, run, bar)
                    finally:
                        walls[name] = time.monotonic() - began
            except TimeLimitReached as reached:
                stopped = str(reached)
                log.warning("%s", stopped)
        if not primary:
            return {}
        current = {(f.name, f.data_hash) for f in folds}
        rows = [r for r in results.read() if hashes.get(r["learner"]) == r["learner_hash"] and (r["fold"], r["data_hash"]) in current]
        if not rows:  # the time limit passed before the first task
            return {}
        timing = timing_record(plan, walls, time.monotonic() - start, cfg.threads, stopped)
        summary = write_report(rows, out, header=header(cfg, data, folds, findings), timing=timing, **cfg.report)
        if run is not None:
            log_comparison(run, summary, summary_table(summary), out)
    return summary


def plan_only(cfg: DictConfig) -> Plan:
    """The plan ``compare(cfg)`` would print first (``medfew plan``): the stages' costs measured here, nothing scored
    and nothing written to the run folder; with a time limit, what it would scale, or why it would refuse."""
    out, start = Path(cfg.paths.output_dir), time.monotonic()
    set_threads(cfg)
    learners = learner_configs(cfg)
    check_seeds(cfg.seeds)
    check_backbone(cfg)
    data = load_data(cfg.data)
    folds, _ = make_folds(cfg, data)
    return plan_run(cfg, data, folds, learners, ResultsFile(out / "results.csv"), out, start, keep=False)[0]


def learner_configs(cfg: DictConfig) -> dict[str, DictConfig]:
    """Root config copies with ``learner`` = each run learner's config + its overrides + the knobs.

    A ``learner_overrides`` entry for an unknown learner or setting is an error naming it, with
    close names; entries for known learners that this run leaves out are checked and unused.
    """
    overrides = OmegaConf.to_container(cfg.learner_overrides)
    for name, changes in overrides.items():
        try:
            base = learner_config(name, searchpath())
        except KeyError as error:
            raise KeyError(f"learner_overrides.{name}: {error.args[0]}") from None
        check_keys(base, changes, f"learner_overrides.{name}")
    configs = {}
    for name in cfg.learners:
        merged = with_learner(cfg, name, overrides.get(name), searchpath())
        apply_knobs(merged.learner, cfg.knobs)
        check_training_settings(merged.learner, f"learner_overrides.{name}")
        configs[name] = merged
    return configs


def learner_hash(settings: dict[str, Any]) -> str:
    """Hash of a learner's resolved settings and of every file they name (pretrained weights), so
    that a weights file changed on disk makes another learner, never a reuse of its old rows."""
    files = sorted(named_files(settings))
    return content_hash(settings, *(file_digest(path, *stat_key(path)) for path in files))


def named_files(value: Any) -> set[str]:
    """The strings inside a nested setting that name existing files."""
    if isinstance(value, dict):
        return set().union(*map(named_files, value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*map(named_files, value)) if value else set()
    return {value} if isinstance(value, str) and "/" in value and Path(value).is_file() else set()


def stat_key(path: str) -> tuple[int, int]:
    stat = Path(path).stat()
    return stat.st_mtime_ns, stat.st_size


@functools.lru_cache(maxsize=64)
def file_digest(path: str, mtime_ns: int, size: int) -> str:
    """Content hash of a file, cached while its modification time and size stay the same."""
    return content_hash(Path(path).read_bytes())


def check_backbone(cfg: DictConfig) -> None:
    """Build the run's backbone once (random init) so that an image size it cannot take stops the run now."""
    check_image_size(cfg.data.image_size)
    if cfg.data.image_size is not None:
        instantiate(cfg.backbone, pretrained=None)()


def header(cfg: DictConfig, data: ImageData, folds: list[Fold], findings: dict[str, str]) -> dict[str, Any]:
    """The run context shown atop summary.md: classes, how ``data`` was cut, what the data checks found
    (``findings``, empty ones left out), fingerprints, smoke flag."""
    return {
        **({"smoke": True} if cfg.smoke else {}),
        **folds[0].protocol.classes(),
        "split": describe_split(cfg, data, folds[0].groups) if folds[0].protocol.cuts_images else folds[0].protocol.description,
        **({LABELLED: labelled} if (labelled := labelled_counts(folds)) else {}),
        **{name: found for name, found in findings.items() if found},
        **({TRANSDUCTIVE: POOL_ALL} if folds[0].protocol.transductive else {}),
        "data fingerprints": {f.name: f.data_hash for f in folds},
    }


def labelled_counts(folds: list[Fold]) -> dict[str, str]:
    """Per setting, the labelled training images over the folds, '3 of 45 (6.67 %)': a fraction's
    one-image-per-class minimum can make it more than it says. {} for protocols without a budget."""
    shown = {}
    for setting in folds[0].protocol.settings():
        counts = [fold.protocol.budget(setting) for fold in folds]
        if None in counts:
            return {}
        labelled, total = zip(*counts)
        shares = [100 * n / of for n, of in counts]
        shown[setting.name] = f"{span(labelled)} of {span(total)} ({span(shares, '{:.3g}')} %)"
    return shown


def describe_split(cfg: DictConfig, data: ImageData, groups: np.ndarray | None) -> str:
    """How ``cfg.data.split`` cuts ``data``, and what it keeps together (``groups``, from ``make_splits``)."""
    settings = cfg.data
    fractions = ", ".join(f"{part} {share:g}" for part, share in settings.split_fractions.items())
    if settings.split == "stratified":
        cut = f"stratified ({fractions}), seed {settings.split_seed}"
    elif settings.split == "kfold":
        repeats = f", repeated {settings.repeats} times" if settings.repeats > 1 else ""
        cut = f"{settings.folds}-fold cross-validation{repeats} (stratified; val carved from the training folds, {fractions}), seed {settings.split_seed}"
    else:
        return "the data's own train / val / test split"
    return f"{cut}; {describe_groups(data, groups, settings.group_duplicates, 'none split across parts')}"


def searchpath() -> list[str]:
    """The running Hydra app's extra config roots (``hydra.searchpath``), for learner lookup."""
    return list(HydraConfig.get().searchpath) if HydraConfig.initialized() else []


def todo_counts(cfg: DictConfig, folds: list[Fold], hashes: dict[str, str], results: ResultsFile) -> dict[tuple, list[int]]:
    """(learner, fold, seed, setting name) -> the tasks left to score in each group of conditions scored together
    (``Robustness.groups``: a task counts while any condition of its group lacks it); ``hashes``: learner name -> learner_hash."""
    done = {key: len(episodes) for key, episodes in results.scored().items()}
    return {
        (name, fold.name, seed, setting.name): [
            fold.protocol.n_tasks(setting) - min(done.get(row_key(identity(cfg, fold, name, hash_, setting, seed, c)), 0) for c in group)
            for group in fold.protocol.robustness.groups()
        ]
        for fold in folds for name, hash_ in hashes.items() for seed in cfg.seeds for setting in fold.protocol.settings()
    }  # fmt: skip


def set_threads(cfg: DictConfig) -> int:
    """Set torch's threads from ``cfg.threads`` (a number or auto) and write the count back, for the plan and the rows."""
    with open_dict(cfg):
        cfg.threads = use_threads(cfg.threads)
    return cfg.threads


def quiet_trainers(cfg: DictConfig, learners: dict[str, DictConfig]) -> None:
    """Hide the Lightning bars of the learners' inner stages unless ``verbose`` (after hashing: the display
    changes no result); the run's own progress says when a stage starts and ends."""
    if not cfg.get("verbose", False):
        for node in learners.values():
            if "trainer" in node:
                OmegaConf.update(node, "trainer.enable_progress_bar", False, merge=False)


def count_plan(
    cfg: DictConfig, folds: list[Fold], learners: dict[str, DictConfig], results: ResultsFile, rates: dict, setup_s: float = 0.0
) -> Plan:
    """The plan of the run (``medfew.evaluation.plan``) from the measured ``rates`` and the tasks ``results`` lacks;
    ``setup_s``: the seconds the command spent before it."""
    hashes = {name: learner_hash(OmegaConf.to_container(node.learner, resolve=True)) for name, node in learners.items()}
    todo, trained = todo_counts(cfg, folds, hashes, results), {}
    every = sum(f.protocol.n_tasks(s) * len(f.protocol.robustness.groups()) for f in folds for s in f.protocol.settings()) * len(cfg.seeds)
    plans = []
    for name, node in learners.items():
        scored = every - sum(sum(left) for key, left in todo.items() if key[0] == name)
        plans.append(learner_plan(name, node.learner, folds, cfg.seeds, todo, scored, rates[name], Path(cfg.paths.cache_dir), trained))
    settings = [s.name for s in folds[0].protocol.settings()]
    counts = ", ".join(f"{n} {word}{'s' if n != 1 else ''}" for n, word in ((len(folds), "fold"), (len(cfg.seeds), "seed"), (len(settings), "setting")))
    shape = f"{cfg.data.name}, {folds[0].protocol.name}: {counts} ({', '.join(settings)})"
    device = accelerator_device(cfg.device)
    machine = f"{device}, {resolve_precision(cfg.trainer.precision, device)}, {cfg.threads} torch thread{'s' if cfg.threads != 1 else ''}"
    return Plan(tuple(plans), shape, machine, episodes=cfg.protocol.get("n_episodes"), setup_s=setup_s)


def plan_run(
    cfg: DictConfig, data: ImageData, folds: list[Fold], learners: dict[str, DictConfig], results: ResultsFile, out: Path,
    start: float, keep: bool = True,
) -> tuple[Plan, list[Fold]]:
    """Measure the stages' costs and plan the run; with ``time_limit``, scale the learners' budgets (in place) to fit it,
    or refuse with the plan and what would fit. ``keep``: record the scaling in ``<out>/plan.json``, which a rerun of
    the same command and limit reuses (the same settings, so it resumes); the folds are redrawn when episodes change."""
    rates = measure(learners, folds[0], cfg.seeds[0], torch.device(accelerator_device(cfg.device)))
    plan = count_plan(cfg, folds, learners, results, rates, time.monotonic() - start)
    if cfg.time_limit is None:
        return plan, folds
    limit_s = check_limit(cfg) - (time.monotonic() - start)
    floors = flat_knobs(cfg.time_limit_floors)
    wanted = {knob for group in ORDER for knob in group}
    if set(floors) != wanted:
        raise KeyError(f"time_limit_floors must name exactly {sorted(wanted)}, got {sorted(floors)}")
    saved = read_json(out / PLAN_RECORD) if keep else {}
    reused = saved.get("time_limit") == cfg.time_limit
    if reused:
        changes = saved["scaled"]
    else:
        changes = scaling(plan, fit_to_limit(plan, limit_s, floors)[1], floors)
    apply_scaling(learners, changes)
    if "episodes" in changes:
        with open_dict(cfg):
            cfg.episodes = changes["episodes"][1]
        folds = make_folds(cfg, data)[0]
    plan = replace(count_plan(cfg, folds, learners, results, rates, time.monotonic() - start), scaled=changes)
    if plan.seconds > limit_s and not reused:
        options = what_fits(plan, limit_s, list(cfg.seeds), len(folds))
        refusal = (
            f"time_limit = {cfg.time_limit:g} min does not fit this run even with every budget at its floor (time_limit_floors): "
            f"about {duration(plan.seconds)}; nothing was run.\n" + "\n".join(plan.lines())
            + f"\nwould fit: {'; or '.join(options) if options else 'nothing smaller found: raise time_limit'}"
        )
        if keep:
            raise ValueError(refusal)
        log.warning("%s", refusal)
    if keep:
        write_json(out / PLAN_RECORD, {"time_limit": cfg.time_limit, "scaled": changes})
    return plan, folds


def check_limit(cfg: DictConfig) -> float:
    """``time_limit`` in seconds, refused when not a positive number of minutes or under DDP (each process would scale alone)."""
    limit = cfg.time_limit
    if isinstance(limit, bool) or not isinstance(limit, (int, float)) or limit <= 0:
        raise ValueError(f"time_limit must be a positive number of minutes (or null: no limit), got {limit!r}")
    if "ddp" in str(cfg.trainer.get("strategy", "")):
        raise ValueError(f"time_limit cannot scale a DDP run (trainer.strategy={cfg.trainer.strategy}); set time_limit=null")
    return 60.0 * limit


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def timing_record(plan: Plan | None, walls: dict[str, float], wall_s: float, threads: int, stopped: str) -> dict[str, Any]:
    """summary.json's ``timing``: the plan's estimates beside the wall times of this command, per learner and in all."""
    estimated = plan.record() if plan is not None else {"estimated_s": None, "learners": {}, "scaled": {}}
    learners = {name: estimated["learners"].get(name, {}) | {"wall_s": round(wall, 1)} for name, wall in walls.items()}
    return estimated | {"wall_s": round(wall_s, 1), "threads": threads, "learners": learners, "stopped": stopped}


def identity(cfg: DictConfig, fold: Fold, name: str, hash_: str, setting, seed: int, condition: Condition = Condition()) -> dict[str, Any]:
    """The columns every row of one (fold, learner, setting, seed, robustness condition) block shares."""
    split_hash = fold.protocol.robustness.split_hash(fold.protocol.split_hash(setting, seed), condition)
    return dict(
        dataset=cfg.data.name, protocol=fold.protocol.name, fold=fold.name, data_hash=fold.data_hash, learner=name,
        learner_hash=hash_, setting=setting.name, kind=setting.kind, value=setting.value, seed=seed,
        split_hash=split_hash, threads=cfg.threads, **condition.columns(),
    )  # fmt: skip


def run_learner(
    cfg: DictConfig, folds: list[Fold], name: str, node: DictConfig, hash_: str, results: ResultsFile, out: Path, run: Any, bar: Progress
) -> None:
    """Score learner ``name`` on every (fold, seed, setting, robustness condition, task) not yet in ``results``; log one line.

    ``run`` (a W&B run or None) reaches ``prepare`` as ``context.logger``. Conditions that share training
    labels share one ``adapt`` per task (``Robustness.groups``); with flipped labels, a protocol whose
    preparation depends on the setting prepares on the same flipped labels.
    """
    scored, device = results.scored(), torch.device(accelerator_device(cfg.device))
    start, rows, kept = time.perf_counter(), [], 0
    for fold in folds:
        protocol, workdir = fold.protocol, out / "work" / f"{name}-{hash_}" / fold.name
        for seed in cfg.seeds:
            learner, prepared = None, None
            for setting, group in ((s, g) for s in protocol.settings() for g in protocol.robustness.groups()):
                blocks = [identity(cfg, fold, name, hash_, setting, seed, condition) for condition in group]
                resumed = [scored.get(row_key(block), set()) for block in blocks]
                kept += sum(map(len, resumed))
                tasks = protocol.tasks(setting, seed, device)
                todo = (task for task in tasks if any(str(task.episode) not in done for done in resumed))
                first = next(todo, None)
                if first is None:
                    continue
                key = f"{fold.data_hash}/{protocol.split_hash(setting, seed)}"  # seeds the corruptions and flips
                if learner is None or not protocol.shares_prepare and prepared != (setting, group[0]):
                    context = replace(protocol.context(setting, seed, workdir), logger=run, cache=Path(cfg.paths.cache_dir))
                    if not protocol.shares_prepare:  # its context holds the task's training labels: flip them alike
                        context = protocol.robustness.context(context, group[0], protocol.robustness.seed(seed, key, group[0], 0))
                    learner, prepared = build_learner(node.learner, name, context, device), (setting, group[0])
                if rank_zero_only.rank == 0:  # other DDP processes only help prepare
                    rows += score_tasks(learner, name, chain([first], todo), blocks, resumed, results, bar.at(blocks[0]), protocol.robustness, key)
    if rank_zero_only.rank != 0:
        return
    if rows:
        log.info(
            "%s: %d tasks in %.0f s, mean bal_acc %.3f%s", name, len(rows), time.perf_counter() - start,
            mean(rows, "bal_acc"), f" ({kept} scored before, kept)" if kept else "",
        )  # fmt: skip
    else:
        log.info("%s: all %d tasks were already in %s", name, kept, results.path.name)


def score_tasks(
    learner: Learner, name: str, tasks: Iterable[Task], blocks: list[dict[str, Any]], resumed: list[set[str]],
    results: ResultsFile, bar: Progress, robustness: Robustness = Robustness(), key: str = "",
) -> list[dict[str, Any]]:
    """Score ``tasks`` in each of ``blocks``' conditions that its episodes ``resumed`` lack; rows reach
    ``results`` at least every ``SAVE_EVERY_S`` seconds and at the end. Past the time limit (``bar.out_of_time``)
    the rows are saved and ``TimeLimitReached`` stops the run after the task just scored."""
    rows, unsaved, saved_at = [], [], time.monotonic()
    for task in tasks:
        todo = [block for block, done in zip(blocks, resumed) if str(task.episode) not in done]
        unsaved += score(learner, name, task, todo, robustness, key)
        bar.update()
        if time.monotonic() - saved_at >= SAVE_EVERY_S or bar.out_of_time():
            save(results, unsaved)
            rows, unsaved, saved_at = rows + unsaved, [], time.monotonic()
        if bar.out_of_time():
            raise TimeLimitReached(
                f"time_limit = {bar.limit_s / 60:g} min passed after {bar.done} of {bar.total} tasks; what was scored is saved "
                "in results.csv and the same command resumes with the rest"
            )
    if unsaved:
        save(results, unsaved)
    return rows + unsaved


def save(results: ResultsFile, rows: list[dict[str, Any]]) -> None:
    """Append ``rows`` to ``results``; when that fails, keep them in a file beside it and name it in the error."""
    try:
        results.append(rows)
    except OSError as error:
        kept = results.save_aside(rows)
        raise OSError(
            error.errno, f"{error.strerror}; the rows scored since the last save ({len(rows)}) are kept in {kept}: add them to "
            f"{results.path.name} (same columns) once it can be written, and the same command resumes after them"
        ) from error


def build_learner(learner_cfg: DictConfig, name: str, context: PrepareContext, device: torch.device) -> Learner:
    """A fresh learner seeded by ``context.seed``, prepared on ``context``, on ``device``."""
    torch.manual_seed(context.seed)
    learner = instantiate(learner_cfg)
    if not isinstance(learner, Learner):
        raise TypeError(f"learner '{name}': {learner_cfg._target_} built a {type(learner).__name__}, not a medfew Learner")
    learner.to(device).prepare(context)
    return learner.to(device)


def score(
    learner: Learner, name: str, task: Task, blocks: list[dict[str, Any]], robustness: Robustness = Robustness(), key: str = ""
) -> list[dict[str, Any]]:
    """One row per block: adapt once on the task's support set (its training labels flipped by the blocks'
    shared label noise), then predict the query images of each block's condition (corrupted or clean).

    ``key`` (the fold and its tasks) and the run's seed seed the flips and corruptions, never the learner.
    """
    seed, conditions = blocks[0]["seed"], [Condition.from_row(block) for block in blocks]
    task = robustness.training(task, conditions[0], robustness.seed(seed, key, conditions[0], task.episode))
    torch.manual_seed(derive_seed(seed, task.episode))  # same draws whether resumed or not
    start = time.perf_counter()
    state = learner.adapt(task.support, task.support_labels, task.val)
    adapted, rows = time.perf_counter() - start, []
    for block, condition in zip(blocks, conditions):
        query = robustness.query(task, condition, robustness.seed(seed, key, condition, task.episode))
        start = time.perf_counter()
        probs = learner.predict(state, query)
        rows.append(block | task_scores(name, task, probs, adapted + time.perf_counter() - start))
    return rows


def task_scores(name: str, task: Task, probs: torch.Tensor, seconds: float) -> dict[str, Any]:
    """Metrics and timing of one task's query ``probs`` (the row's columns after its block's)."""
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


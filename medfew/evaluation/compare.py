"""One comparison: every listed learner under one protocol, for every fold, seed and setting.

The data is cut into folds (``medfew.evaluation.folds``: the official split, a stratified
split or k-fold cross-validation). For each fold, learner (found by name, see
``medfew.learners.registry``) and seed, a fresh learner is instantiated with that seed,
prepared on what the protocol allows (once per seed when the protocol's context does not
depend on the setting, else once per setting) and scored on the protocol's tasks. SSL
pretraining runs once per pool, seed and settings in ``<paths.cache_dir>/ssl``. Rows go to
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
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities.rank_zero import rank_zero_only
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from medfew.config import apply_knobs, check_keys, check_seeds, check_training_settings, record_command
from medfew.data.dataset import ImageData
from medfew.data.stratify import describe_groups
from medfew.evaluation.folds import Fold, check_image_size, check_run_folder, load_data, make_folds, record, warn_missing_classes
from medfew.evaluation.leakage import leakage_note, warn_label_conflicts
from medfew.evaluation.metrics import check_probabilities, classification_metrics, confusion_matrix, per_class_accuracy
from medfew.evaluation.protocols import Task
from medfew.evaluation.report import LABELLED, span, summary_table, write_report
from medfew.evaluation.results import ResultsFile, row_key
from medfew.files import RunLock, write_json, write_text
from medfew.hashing import content_hash
from medfew.learners.base import Learner, PrepareContext
from medfew.learners.registry import learner_config, with_learner
from medfew.seeding import derive_seed
from medfew.tracking import log_comparison
from medfew.training import accelerator_device

log = logging.getLogger(__name__)
SAVE_EVERY_S = 60.0  # a killed run loses at most this much scoring


def compare(cfg: DictConfig) -> dict[str, Any]:
    """Run the comparison described by the root config; returns the summary (also written).

    Under DDP (``trainer=ddp``) every process prepares the learners (meta-training, SSL) together;
    only the first scores, writes and reports, and the others return an empty summary.
    """
    out, primary = Path(cfg.paths.output_dir), rank_zero_only.rank == 0
    with RunLock(out) if primary else contextlib.nullcontext():
        results = ResultsFile(out / "results.csv")
        if primary:
            results.check_writable()  # now, not after hours of scoring that could not be saved
        learners = learner_configs(cfg)
        settings = {name: OmegaConf.to_container(node.learner, resolve=True) for name, node in learners.items()}
        resolved = OmegaConf.to_container(cfg, resolve=True) | {"learner_settings": settings}
        check_seeds(cfg.seeds)
        check_backbone(cfg)
        data = load_data(cfg.data)
        findings = {"label conflicts": warn_label_conflicts(data)}
        folds, leakage = make_folds(cfg, data)
        findings["leakage"] = leakage_note(leakage)
        findings["classes missing from test"] = warn_missing_classes(folds)
        if primary:  # refused before anything in the folder is rewritten
            check_run_folder(out, record(cfg, folds), results, folds)
            record_command(cfg, out)
            write_text(out / "config_resolved.yaml", OmegaConf.to_yaml(resolved))
            write_json(out / "leakage.json", leakage if len(leakage) > 1 else next(iter(leakage.values())))
        run = instantiate(cfg.logger, _partial_=True)(config=resolved)
        hashes = {name: learner_hash(learner) for name, learner in settings.items()}
        with logging_redirect_tqdm(), progress(cfg, folds, hashes, results, primary) as bar:
            for name, node in learners.items():
                run_learner(cfg, folds, name, node, hashes[name], results, out, run, bar)
        if not primary:
            return {}
        current = {(f.name, f.data_hash) for f in folds}
        rows = [r for r in results.read() if hashes.get(r["learner"]) == r["learner_hash"] and (r["fold"], r["data_hash"]) in current]
        summary = write_report(rows, out, header=header(cfg, data, folds, findings), **cfg.report)
        if run is not None:
            log_comparison(run, summary, summary_table(summary), out)
    return summary


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


def progress(cfg: DictConfig, folds: list[Fold], hashes: dict[str, str], results: ResultsFile, show: bool) -> tqdm:
    """One bar over every task left to score (learner x fold x seed x setting x episode); ``hashes``:
    learner name -> learner_hash."""
    done = {key: len(episodes) for key, episodes in results.scored().items()}
    total = sum(
        fold.protocol.n_tasks(setting) - done.get(row_key(identity(cfg, fold, name, hash_, setting, seed)), 0)
        for fold in folds for name, hash_ in hashes.items() for seed in cfg.seeds for setting in fold.protocol.settings()
    )  # fmt: skip
    return tqdm(total=total, unit="task", desc="scoring", disable=None if show else True, dynamic_ncols=True, smoothing=0.05)


def identity(cfg: DictConfig, fold: Fold, name: str, hash_: str, setting, seed: int) -> dict[str, Any]:
    """The columns every row of one (fold, learner, setting, seed) block shares."""
    return dict(
        dataset=cfg.data.name, protocol=fold.protocol.name, fold=fold.name, data_hash=fold.data_hash, learner=name,
        learner_hash=hash_, setting=setting.name, kind=setting.kind, value=setting.value, seed=seed,
        split_hash=fold.protocol.split_hash(setting, seed),
    )  # fmt: skip


def run_learner(
    cfg: DictConfig, folds: list[Fold], name: str, node: DictConfig, hash_: str, results: ResultsFile, out: Path, run: Any, bar: tqdm
) -> None:
    """Score learner ``name`` on every (fold, seed, setting, task) not yet in ``results``; log one line.

    ``run`` (a W&B run or None) reaches ``prepare`` as ``context.logger``.
    """
    scored, device = results.scored(), torch.device(accelerator_device(cfg.device))
    start, rows, kept = time.perf_counter(), [], 0
    for fold in folds:
        protocol, workdir = fold.protocol, out / "work" / f"{name}-{hash_}" / fold.name
        for seed in cfg.seeds:
            learner = None
            for setting in protocol.settings():
                block = identity(cfg, fold, name, hash_, setting, seed)
                resumed = scored.get(row_key(block), set())
                kept += len(resumed)
                todo = (task for task in protocol.tasks(setting, seed, device) if str(task.episode) not in resumed)
                first = next(todo, None)
                if first is None:
                    continue
                if learner is None or not protocol.shares_prepare:
                    context = replace(protocol.context(setting, seed, workdir), logger=run, cache=Path(cfg.paths.cache_dir))
                    learner = build_learner(node.learner, name, context, device)
                if rank_zero_only.rank == 0:  # other DDP processes only help prepare
                    rows += score_tasks(learner, name, chain([first], todo), block, results, bar)
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
    learner: Learner, name: str, tasks: Iterable[Task], block: dict[str, Any], results: ResultsFile, bar: tqdm
) -> list[dict[str, Any]]:
    """Score ``tasks``; rows reach ``results`` at least every ``SAVE_EVERY_S`` seconds and at the end."""
    rows, unsaved, saved_at = [], [], time.monotonic()
    for task in tasks:
        unsaved.append(block | score(learner, name, task, block["seed"]))
        bar.update()
        if time.monotonic() - saved_at >= SAVE_EVERY_S:
            save(results, unsaved)
            rows, unsaved, saved_at = rows + unsaved, [], time.monotonic()
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


def score(learner: Learner, name: str, task: Task, seed: int) -> dict[str, Any]:
    """Adapt on the task's support set, predict its query set; metrics and timings of one row."""
    torch.manual_seed(derive_seed(seed, task.episode))  # same draws whether resumed or not
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


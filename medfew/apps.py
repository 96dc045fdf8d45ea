"""What each ``medfew`` command does with its composed config (``medfew.cli`` wraps them in Hydra).

- ``run``: one comparison (``medfew.evaluation.compare``), then the primary table on the console;
- ``plan``: what ``run`` would do and how long it would take (``medfew.evaluation.plan``), scoring nothing;
- ``pretrain``: self-supervised pretraining on the unlabeled pool, kNN on a held-out monitor when labels exist;
- ``metatrain``: ``run`` with one learner, meta-trained on base classes, scored on novel-class episodes;
- ``audit``: exact and near-duplicate images across the splits of a data config, their contact sheets and,
  with ``label_issues=true``, likely mislabelled images (``medfew.evaluation.label_issues``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.utilities.rank_zero import rank_zero_only

from medfew.config import apply_knobs, check_training_settings, record_command
from medfew.data import ImageData, audit_duplicates
from medfew.deploy.bundle import check_trusted, load_bundle
from medfew.deploy.fit import fit_learner, save_fitted
from medfew.deploy.predict import PREDICTIONS, predict_input
from medfew.evaluation import compare
from medfew.evaluation.compare import plan_only
from medfew.evaluation.plan import Plan
from medfew.evaluation.folds import load_data
from medfew.evaluation.label_issues import audit_label_issues, write_issues
from medfew.evaluation.sheets import duplicate_sheets, label_issue_sheet
from medfew.files import write_csv, write_json, write_text
from medfew.models import load_backbone
from medfew.ssl import pool_and_monitor
from medfew.ssl.monitor import monitor_parts, monitor_scores
from medfew.tracking import log_backbone, wandb_loggers
from medfew.training import accelerator_device


def run(cfg: DictConfig) -> dict[str, Any]:
    """Compare the configured learners; print the primary metric's table and where the rest is."""
    summary = compare(cfg)
    if not summary:  # a helping DDP process
        return summary
    out = Path(cfg.paths.output_dir)
    print(console_table(out / "summary.md"))
    print(f"full summary, plots and results.csv: {out}")
    return summary


def plan(cfg: DictConfig) -> Plan:
    """Print what ``run`` would do with the same config, and how long it would take; score nothing."""
    planned = plan_only(cfg)
    print("\n".join(planned.lines()))
    return planned


def console_table(summary_md: Path) -> str:
    """summary.md up to the end of its first metric table (the primary metric)."""
    lines = summary_md.read_text().splitlines()
    tables = [i for i, line in enumerate(lines) if line.startswith("|")]
    if not tables:
        return "\n".join(lines)
    end = next((i for i in range(tables[0], len(lines)) if not lines[i].startswith("|")), len(lines))
    return "\n".join(lines[:end])


def pretrain(cfg: DictConfig) -> Path:
    """SSL on the unlabeled pool of ``cfg.data`` (minus a labelled monitor split, when it has labels); returns the export path."""
    out = Path(cfg.paths.output_dir)
    if rank_zero_only.rank == 0:  # DDP workers rerun the command with Lightning's own Hydra overrides
        record_command(cfg, out)
    apply_knobs(cfg.ssl, cfg.knobs, prefix=("pretrain",))
    check_training_settings(cfg.ssl, "ssl", prefix=("pretrain",))
    if not sys.stderr.isatty() and not cfg.verbose:  # a log file gets the monitor's progress lines, not a bar
        OmegaConf.update(cfg, "trainer.enable_progress_bar", False, merge=False)
    write_text(out / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    data = load_data(cfg.data)
    pool, monitor = pool_and_monitor(data, cfg.monitor_per_class, cfg.seed)
    if cfg.max_images is not None and cfg.max_images < len(pool):
        generator = torch.Generator().manual_seed(cfg.seed)
        pool = pool.subset(torch.randperm(len(pool), generator=generator)[: cfg.max_images])
    run = instantiate(cfg.logger, _partial_=True)(config=OmegaConf.to_container(cfg, resolve=True))
    loggers = [CSVLogger(out, name="logs"), *wandb_loggers(run)]
    export = instantiate(cfg.ssl)(pool, out, cfg.seed, monitor=monitor, logger=loggers)
    backbone = load_backbone(export)
    scores = monitor_scores(backbone, monitor_parts(monitor), cfg.ssl.knn_k)
    if "knn_acc" in scores:
        print(f"pool: {len(pool)} images; monitor: {len(monitor)} labelled, held out")
        print(f"kNN accuracy of the exported backbone on the monitor split: {scores['knn_acc']:.3f}")
    else:
        print(f"pool: {len(pool)} images; monitor: {len(monitor)} pool images, for the collapse signal")
        reason = "monitor_per_class = 0" if cfg.monitor_per_class == 0 else f"{cfg.data.name} has no labelled images to hold out"
        print(f"kNN accuracy: not computed: {reason}")
    print(
        f"spread (embedding_std) of its features on the monitor: {scores['embedding_std']:.4f} "
        f"(0: collapsed; about 1/sqrt(D) = {backbone.num_features ** -0.5:.4f} when spread); per epoch: {export.parent / 'knn.csv'}"
    )
    print(f"export: {export}")
    if run is not None:
        run.summary.update({f"monitor/{name}": value for name, value in scores.items()})
        log_backbone(run, export)
        run.finish()
    return export


def metatrain(cfg: DictConfig) -> dict[str, Any]:
    """``run`` with one learner: ``cfg.learner`` (composed by name, edited as ``learner.*``) under
    the episodes protocol; meta-training happens in its ``prepare``."""
    name = HydraConfig.get().runtime.choices.learner
    check_training_settings(cfg.learner, "learner")
    with open_dict(cfg):
        cfg.learners = [name]
        cfg.learner_overrides = {name: cfg.pop("learner")}
    return run(cfg)


def audit(cfg: DictConfig) -> dict[str, int]:
    """Run the leakage audit for ``cfg.data`` (across its splits, or within data without) and write ``cfg.csv``, the
    contact sheets (``cfg.sheets``) and, with ``cfg.label_issues``, label_issues.csv and its sheet; return the counts."""
    record_command(cfg, cfg.paths.output_dir)
    data = instantiate(cfg.data.source)
    report = audit_duplicates(data, cfg.threshold)
    rows = report.rows()
    for row in rows:
        row["first_label"], row["second_label"] = (label_name(data, row[k]) for k in ("first", "second"))
    counts = report.counts() | {"label_conflicts": sum(r["first_label"] != r["second_label"] for r in rows), "images": len(data)}
    path = Path(cfg.csv)
    write_csv(path, rows, list(rows[0]) if rows else ["kind", "distance", "first", "second"])
    if len(data.split_names()) < 2:
        print(
            f"{data.name}: no splits to leak across; the duplicates within it are listed, the pairs that link each set "
            "(medfew run keeps a set in one part: data.group_duplicates)"
        )
    out = Path(cfg.paths.output_dir)
    if cfg.sheets:
        sheets = duplicate_sheets(data, rows, out, max(1, cfg.sheet_tiles // 2), cfg.threshold, cfg.sheet_pages)
    if cfg.label_issues:
        labelled, issues = audit_label_issues(cfg, out)
        counts |= issues.counts(labelled)
        written = write_issues(out / "label_issues.csv", issues.rows(labelled))
        print(f"label issues ({cfg.issue_finder.learner}, {cfg.issue_finder.folds}-fold, cleanlab): {len(issues.ranked)} flagged, written to {written}")
        if cfg.sheets:
            sheets += label_issue_sheet(labelled, issues, out / "label_issues.png", cfg.sheet_tiles, cfg.sheet_pages)
    write_json(out / "audit.json", counts)
    print(f"{data.name}: threshold {cfg.threshold}; {json.dumps(counts, indent=1)}\npairs written to {path}")
    if cfg.sheets:
        print(f"contact sheets: {', '.join(p.name for p in sheets) or 'none (nothing flagged)'} in {out}")
    return counts


def label_name(data: ImageData, index: int) -> str:
    label = int(data.labels[index])
    return data.class_names[label] if label >= 0 else "unlabeled"


def fit(cfg: DictConfig) -> Path:
    """Train ``cfg.learner`` with all its stages on the labelled images of ``cfg.data`` (``cfg.images``: all, or
    its train part) and write its model bundle to ``<run>/model``; returns the bundle folder."""
    out = Path(cfg.paths.output_dir)
    record_command(cfg, out)
    name = HydraConfig.get().runtime.choices.learner
    apply_knobs(cfg.learner, cfg.knobs)
    check_training_settings(cfg.learner, "learner")
    write_text(out / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    config = OmegaConf.to_container(cfg.learner, resolve=True)
    check_trusted(config, "learner")  # a bundle names medfew code only: refused now, not after training
    data = load_data(cfg.data)
    device = torch.device(accelerator_device(cfg.device))
    run = instantiate(cfg.logger, _partial_=True)(config=OmegaConf.to_container(cfg, resolve=True))
    fitted = fit_learner(cfg.learner, name, data, cfg.images, cfg.seed, out / "work", device, cache=out / "cache", logger=run)
    if run is not None:
        run.finish()
    folder = save_fitted(fitted, out / "model", name, config, bits=cfg.data.source.get("bits", 16), smoke=cfg.smoke)
    counts = ", ".join(f"{c}: {n}" for c, n in zip(data.class_names, fitted.labelled.class_counts().tolist()))
    print(f"{name} fitted on {len(fitted.labelled)} labelled images of {data.name} ({cfg.images}; {counts})")
    print(f"model bundle: {folder}\napply it: medfew predict model={folder} input=<folder or image file>")
    return folder


def predict(cfg: DictConfig) -> dict[str, Any]:
    """Apply the model bundle ``cfg.model`` to every file under ``cfg.input``: predictions.csv, prediction.json and,
    with ``cfg.explain``, Grad-CAM overlays in the run folder; returns what prediction.json records."""
    out = Path(cfg.paths.output_dir)
    record_command(cfg, out)
    bundle = load_bundle(cfg.model).to(accelerator_device(cfg.device))
    record = predict_input(bundle, cfg.input, out, cfg.batch_size, cfg.explain, str(cfg.model))
    shown = ", ".join(f"{name}: {n}" for name, n in record["predicted"].items()) or "none"
    print(f"{record['files']} files: predicted {shown}; not read: {len(record['not_read'])}; converted: {record['converted']}")
    for missed in record["not_read"][:5]:
        print(f"  {missed['file']}: {missed['note']}")
    if cfg.explain:
        explained = record["explanations"]
        print(f"explanations: {explained['contact_sheet']}" if explained["written"] else f"no explanations: {explained['reason']}")
    print(f"predictions: {out / PREDICTIONS}")
    return record

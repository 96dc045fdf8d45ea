"""Weights & Biases, all of it: runs (offline by default, resumed per run folder), the
comparison's numbers, tables, plots and files, backbone exports as model artifacts, the
Lightning logger, and reading an offline run back without a server.

No other medfew module imports ``wandb``; they pass the run that ``start_wandb`` returns
(None when W&B is off) to the functions here.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import struct
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from medfew.files import write_text
from medfew.models.backbone import read_spec

if TYPE_CHECKING:
    from pytorch_lightning.loggers import Logger
    from wandb import Run
    from wandb.proto.wandb_internal_pb2 import Record

log = logging.getLogger(__name__)
MODES = ("offline", "online", "disabled")
RUN_ID_FILE = "wandb_run_id"  # in the run folder: a rerun of the folder resumes this W&B run
RESULT_FILES = ("results.csv", "summary.md", "summary.json")
#: summary entries that describe a comparison's results artifact (its metadata)
ARTIFACT_KEYS = ("dataset", "protocol", "learners", "metrics", "reference", "confidence", "identical_splits")
#: columns of ``summary_table`` that name a row rather than measure it
ROW_NAMES = ("metric", "learner", "setting", "kind", "value")


def start_wandb(
    mode: str = "offline",
    project: str = "medfew",
    run_dir: str | os.PathLike = ".",
    name: str | None = None,
    group: str | None = None,
    tags: list[str] | None = None,
    tag_values: Mapping[str, Any] | None = None,
    config: dict[str, Any] | None = None,
    entity: str | None = None,
    init_timeout: float = 30,
) -> Run | None:
    """Start (or resume) the W&B run of ``run_dir``; None when ``mode`` is "disabled" and in every
    DDP process but the first (one run per job, not one per process).

    The run's id is kept in ``<run_dir>/wandb_run_id``: running again in the same folder resumes
    that run (``resume="allow"``); delete the file to start a new one. Each offline attempt
    writes its own ``<run_dir>/wandb/offline-run-*`` folder under that id, and
    ``wandb sync <run_dir>/wandb/offline-run-*`` uploads them, in order, into one run.

    ``config`` is logged as given (nested dicts stay nested). ``tag_values`` adds one
    ``key:value`` tag per value, e.g. {"learner": ["finetune", "protonet"], "seed": [0]} ->
    learner:finetune, learner:protonet, seed:0 (None skipped).

    An online run that cannot reach its server falls back to offline with a warning, so
    nothing is lost. W&B's own console lines follow ``WANDB_SILENT`` (``medfew.console``).
    """
    if mode not in MODES:
        raise ValueError(f"logger mode '{mode}' is not one of {MODES}")
    from pytorch_lightning.utilities.rank_zero import rank_zero_only

    if mode == "disabled" or rank_zero_only.rank != 0:
        return None
    import wandb

    id_file = Path(run_dir) / RUN_ID_FILE
    id_file.parent.mkdir(parents=True, exist_ok=True)
    tags = [*(tags or []), *value_tags(tag_values or {})]
    kwargs = dict(
        project=project, entity=entity, dir=str(run_dir), name=name, group=group, tags=tags, config=config,
        id=id_file.read_text().strip() if id_file.exists() else None, resume="allow", reinit="finish_previous",
    )  # fmt: skip
    try:
        run = wandb.init(mode=mode, settings=wandb.Settings(init_timeout=init_timeout), **kwargs)
    except Exception as error:  # wandb raises several error types when the server is unreachable
        if mode == "offline":
            raise
        warnings.warn(f"W&B online run failed ({type(error).__name__}: {error}); logging offline to {run_dir}/wandb")
        run = wandb.init(mode="offline", **kwargs)
    write_text(id_file, run.id)
    where = f"offline in {Path(run.dir).parent}; `wandb sync` it to upload" if run.offline else run.url
    log.info("W&B run %s%s: %s", run.id, " (resumed)" if kwargs["id"] else "", where)
    return run


def value_tags(tag_values: Mapping[str, Any]) -> list[str]:
    """``key:value`` for every value of every key (a scalar is one value; None adds nothing)."""
    tags = []
    for key, values in tag_values.items():
        if values is None:
            continue
        for value in values if isinstance(values, Sequence) and not isinstance(values, str) else [values]:
            tags.append(f"{key}:{value:g}" if isinstance(value, float) else f"{key}:{value}")
    return tags


def wandb_loggers(run: Run | None, prefix: str = "") -> list[Logger]:
    """Lightning loggers that write to ``run``: ``[WandbLogger]``, or ``[]`` when ``run`` is None.

    ``prefix`` (e.g. the learner and seed) keeps several trainings of one run apart:
    ``<prefix>-train/loss``.
    """
    if run is None:
        return []
    from pytorch_lightning.loggers import WandbLogger

    return [WandbLogger(experiment=run, prefix=prefix)]


def log_comparison(run: Run, summary: Mapping[str, Any], table: pd.DataFrame, out: str | os.PathLike) -> None:
    """A finished comparison into ``run``, which then finishes.

    - run summary: every number of ``table`` (``summary_table`` of ``medfew.evaluation.report``:
      one row per metric, learner and setting) as ``<metric>/<learner>/<setting>`` (the mean)
      and ``<metric>/<learner>/<setting>/<column>`` (low, high, n, ...); NaN left out;
    - tables ``comparison`` (``table``) and ``results`` (``<out>/results.csv``, one row per task);
    - the PNG plots of ``out`` as images ``plots/<name>``;
    - results.csv, summary.md and summary.json as the artifact ``results-<run id>`` (type
      ``results``), described by ``summary``'s dataset, protocol, learners, metrics and reference.
    """
    import wandb

    out = Path(out)
    run.summary.update(summary_scalars(table))
    images = {f"plots/{path.stem}": wandb.Image(str(path)) for path in sorted(out.glob("*.png"))}
    rows = wandb.Table(dataframe=pd.read_csv(out / "results.csv"))
    run.log({"comparison": wandb.Table(dataframe=table), "results": rows, **images})
    artifact = wandb.Artifact(f"results-{run.id}", type="results", metadata={k: summary[k] for k in ARTIFACT_KEYS})
    for name in RESULT_FILES:
        artifact.add_file(str(out / name))
    run.log_artifact(artifact)
    run.finish()


def summary_scalars(table: pd.DataFrame) -> dict[str, float | int]:
    """``<metric>/<learner>/<setting>[/<column>]`` -> value for every finite number of ``table``."""
    columns = [c for c in table.columns if c not in ROW_NAMES and is_number_column(table[c])]
    scalars = {}
    for row in table.to_dict("records"):  # Python numbers, not numpy ones
        key = f"{row['metric']}/{row['learner']}/{row['setting']}"
        scalars |= {key if c == "mean" else f"{key}/{c}": row[c] for c in columns if math.isfinite(row[c])}
    return scalars


def is_number_column(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def log_backbone(run: Run, path: str | os.PathLike, name: str | None = None) -> None:
    """A backbone export (``medfew.models.save_backbone``) as a W&B model artifact whose metadata
    is its medfew spec; ``name`` defaults to ``backbone-<export folder>``. Logging the same name
    again adds a version."""
    import wandb

    path = Path(path)
    spec = read_spec(path)
    if spec is None:
        raise ValueError(f"{path} is not a medfew backbone export (a .safetensors file with a medfew spec in its metadata)")
    name = re.sub(r"[^\w.-]+", "-", name or f"backbone-{path.resolve().parent.name}")  # W&B's allowed characters
    artifact = wandb.Artifact(name, type="model", metadata=spec)
    artifact.add_file(str(path))
    run.log_artifact(artifact)


@dataclass(frozen=True)
class OfflineRun:
    """What an offline run folder recorded, as ``wandb sync`` would upload it."""

    id: str
    group: str
    tags: tuple[str, ...]
    config: dict[str, Any]
    summary: dict[str, Any]
    artifacts: list[dict[str, Any]]  # name, type, metadata, files


def read_offline_run(folder: str | os.PathLike) -> OfflineRun:
    """The config, summary and artifacts of an ``offline-run-*`` folder, read without a W&B server
    (a look before ``wandb sync``). Summary removals are not replayed.

    The W&B service writes the run file out when it stops (at the end of the process, or at
    ``wandb.teardown()``); until then the file may be incomplete.
    """
    files = sorted(Path(folder).glob("run-*.wandb"))
    if not files:
        raise FileNotFoundError(f"{folder} holds no run-*.wandb file; is it a W&B offline-run-* folder?")
    run, config, summary, artifacts = None, {}, {}, []
    for record in run_records(files[0]):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
            update(config, run.config.update)
            update(summary, run.summary.update)
        elif kind in ("config", "summary"):
            update(config if kind == "config" else summary, getattr(record, kind).update)
        elif kind == "artifact":
            a = record.artifact
            paths = [entry.path for entry in a.manifest.contents]
            artifacts.append(dict(name=a.name, type=a.type, metadata=json.loads(a.metadata or "null"), files=paths))
    if run is None:
        raise ValueError(f"{files[0]} holds no run record (not written out yet? see wandb.teardown())")
    return OfflineRun(run.run_id, run.run_group, tuple(run.tags), config, summary, artifacts)


def update(target: dict[str, Any], items: Any) -> None:
    """Apply W&B config / summary items (``key`` or ``nested_key`` and ``value_json``) to ``target``."""
    for item in items:
        *parents, last = list(item.nested_key) or [item.key]
        node = target
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = json.loads(item.value_json)


def run_records(path: Path) -> Iterator[Record]:
    """The records of a ``run-*.wandb`` file: a 7-byte header (":W&B", magic, version), then
    LevelDB-log chunks (crc32c, length, type: 1 full, 2 first, 3 middle, 4 last) in 32 KiB blocks."""
    from wandb.proto.wandb_internal_pb2 import Record

    data = path.read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a W&B run file (no ':W&B' header)")
    block, header, full, last = 32768, 7, 1, 4
    position, pending = header, b""
    while position + header <= len(data):
        if block - position % block < header:  # a block's tail too short for a chunk header is padding
            position += block - position % block
            continue
        _, length, kind = struct.unpack_from("<IHB", data, position)
        pending += data[position + header : position + header + length]
        position += header + length
        if kind in (full, last):
            yield Record.FromString(pending)
            pending = b""

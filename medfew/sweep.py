"""One comparison table from the jobs of one Hydra multirun (``experiments/run.py -m ...``).

Every job of a sweep writes its own ``results.csv``; ``gather`` merges them into the sweep
folder's ``results.csv``, ``summary.md``, ``summary.json`` and plots (``write_report`` of
``medfew.evaluation.report``), as if one run had scored every learner. When the jobs differ
in more than seeds, learners and settings (shots, fractions; e.g. ``backbone=conv4,resnet18``), each learner is
labelled with the job's differing overrides: ``finetune [backbone=resnet18]``; the paired tests
then take as reference the relabelled version of the reference learner that ran on the defaults
(``finetune [backbone=(default)]``), the only version, or the label passed as ``reference``.
``GatherSweep`` runs ``gather`` when a multirun ends (configured in ``configs/hydra``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Transformer
from hydra.experimental.callback import Callback
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from medfew.evaluation.report import LABELLED, summary_table, write_report
from medfew.evaluation.results import ResultsFile
from medfew.tracking import log_comparison

log = logging.getLogger(__name__)

#: overrides (and groups of them, ``report`` for ``report.reference``) that never label a learner: the rows
#: already hold the learner, seed and setting, and reporting, tracking and folders leave the scores alone
SAME_COMPARISON = frozenset(
    {"learners", "seeds", "seed", "protocol.shots", "protocol.fractions", "protocol.per_class", "report", "logger", "paths", "verbose"}
)


def job_dirs(sweep_dir: Path) -> list[Path]:
    """Folders under ``sweep_dir`` (not itself) holding a results.csv, in name order."""
    return sorted(path.parent for path in sweep_dir.rglob("results.csv") if path.parent != sweep_dir)


def job_overrides(job_dir: Path) -> dict[str, str]:
    """key -> value of the job's command-line overrides (``.hydra/overrides.yaml``); {} when absent.

    A dict value is spread over its dotted keys (``x={lr: 0.1}`` gives ``x.lr``), so that jobs
    differ only in the entries that differ.
    """
    path = job_dir / ".hydra" / "overrides.yaml"
    if not path.exists():
        return {}
    parsed = OverridesParser.create().parse_overrides(list(OmegaConf.load(path)))
    return {key: value for o in parsed for key, value in dotted(o.key_or_group, o.value())}


def dotted(key: str, value: Any) -> list[tuple[str, str]]:
    """(dotted key, value as written in an override) of every leaf of ``value``."""
    if isinstance(value, dict):
        return [leaf for name, item in value.items() for leaf in dotted(f"{key}.{name}", item)]
    return [(key, Transformer.str(value))]


def varying_keys(overrides: Iterable[Mapping[str, str]], ignore: Iterable[str]) -> list[str]:
    """Override keys whose value differs between jobs (absent counts as a value), minus ``ignore`` and the keys under them."""
    overrides, ignore = list(overrides), set(ignore)
    keys = sorted(key for key in {key for o in overrides for key in o} if not any(key == i or key.startswith(f"{i}.") for i in ignore))
    return [key for key in keys if len({o.get(key) for o in overrides}) > 1]


def current_rows(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """Rows of each learner's latest config (the learner_hash of its last block), as ``compare`` reports."""
    latest = {row["learner"]: row["learner_hash"] for row in rows}
    return [row for row in rows if latest[row["learner"]] == row["learner_hash"]]


def applies_to(key: str, learner: str) -> bool:
    """Whether override ``key`` can change ``learner``'s scores: any key but another learner's ``learner_overrides``."""
    own = f"learner_overrides.{learner}"
    return not key.startswith("learner_overrides.") or key == own or key.startswith(f"{own}.")


def learner_label(learner: str, job_override: Mapping[str, str], keys: Iterable[str]) -> tuple[str, bool]:
    """``learner`` labelled with the job's values of the varying ``keys`` that apply to it (its own
    ``learner_overrides.<learner>.`` left out of the key), and whether the job left all of those at their defaults."""
    own = [key for key in keys if applies_to(key, learner)]
    prefix = f"learner_overrides.{learner}."
    suffix = ", ".join(f"{key.removeprefix(prefix)}={job_override.get(key, '(default)')}" for key in own)
    return (f"{learner} [{suffix}]" if suffix else learner), all(key not in job_override for key in own)


def reference_label(requested: str | None, labels: Mapping[str, tuple[str, bool]]) -> str | None:
    """The gathered label of the reference learner ``requested``.

    ``labels`` maps each gathered label to (its learner, whether its job ran on the defaults of every
    varying key). A label itself is taken as is; a learner name is taken as its only relabelled
    version, or the one on defaults; with several and none on defaults the table has no reference.
    """
    if requested is None or requested in labels:
        return requested
    versions = [label for label, (learner, _) in labels.items() if learner == requested]
    on_defaults = [label for label in versions if labels[label][1]]
    if len(versions) == 1 or len(on_defaults) == 1:
        return (on_defaults or versions)[0]
    if versions:
        log.warning("reference learner %s ran in %d versions (%s): no paired tests; name one with --reference", requested, len(versions), versions)
    return requested


def gather(
    sweep_dir: str | Path,
    ignore: Iterable[str] = SAME_COMPARISON,
    report: Mapping[str, Any] | None = None,
    reference: str | None = None,
) -> dict[str, Any]:
    """Merge the sweep's job results into ``<sweep_dir>/results.csv`` and report them there.

    Args:
        sweep_dir: the multirun folder (``hydra.sweep.dir``).
        ignore: override keys that do not distinguish learners (seeds, learner lists).
        report: ``write_report`` settings; None takes the first job's ``report`` config.
        reference: the paired tests' reference, a learner or a gathered label
            (``finetune [backbone=resnet18]``); None takes ``report``'s (see ``reference_label``).
    Returns the summary (also in summary.json).
    """
    sweep_dir = Path(sweep_dir)
    jobs = job_dirs(sweep_dir)
    if not jobs:
        raise FileNotFoundError(f"no job results.csv under {sweep_dir}; is it a multirun folder of experiments/run.py?")
    overrides = [job_overrides(job) for job in jobs]
    keys = varying_keys(overrides, ignore)
    rows, owner, labels = [], {}, {}
    for job, job_override in zip(jobs, overrides):
        for row in current_rows(ResultsFile(job / "results.csv").read()):
            learner = row["learner"]
            row["learner"], on_defaults = learner_label(learner, job_override, keys)
            labels[row["learner"]] = (learner, on_defaults)
            identity = (row["learner"], row["fold"], row["setting"], row["seed"], row["episode"])
            if owner.setdefault(identity, job) != job:
                raise ValueError(
                    f"jobs {owner[identity].name} and {job.name} both scored learner {row['learner']}, fold {row['fold']}, "
                    f"{row['setting']}, seed {row['seed']}: no override that applies to it differs between them "
                    f"(not told apart: {sorted(ignore)} and other learners' learner_overrides)"
                )
            rows.append(row)
    configs = [resolved_config(job) for job in jobs]
    settings = dict(report) if report is not None else OmegaConf.to_container(configs[0]).get("report", {})
    settings["reference"] = reference_label(reference or settings.get("reference", "finetune"), labels)
    if reference is not None and settings["reference"] not in labels:
        raise ValueError(f"reference {reference!r} is none of the gathered learners: {sorted(labels)}")
    merged = ResultsFile(sweep_dir / "results.csv")
    merged.path.unlink(missing_ok=True)
    merged.append(rows)
    summary = write_report(rows, sweep_dir, header=sweep_header(jobs, configs), **settings)
    log.info("gathered %d rows of %d jobs into %s", len(rows), len(jobs), sweep_dir / "summary.md")
    return summary


def sweep_header(jobs: list[Path], configs: list[DictConfig]) -> dict[str, Any]:
    """The gathered table's run context: the first job's (classes, split), every job's labelled counts
    (``LABELLED``), a smoke run if any job's config (``configs``, as written before it scores) says so."""
    summaries = [job / "summary.json" for job in jobs if (job / "summary.json").exists()]
    headers = [json.loads(summary.read_text()).get("header", {}) for summary in summaries]
    header = {k: v for k, v in (headers[0] if headers else {}).items() if k not in ("smoke", "data fingerprints")}
    labelled = {setting: count for h in headers for setting, count in h.get(LABELLED, {}).items()}
    smoke = any(config.get("smoke") for config in configs)
    return header | ({LABELLED: labelled} if labelled else {}) | ({"smoke": True} if smoke else {})


def resolved_config(job_dir: Path) -> DictConfig:
    """A job's config_resolved.yaml, or an empty config when absent (then the report defaults apply)."""
    path = job_dir / "config_resolved.yaml"
    return OmegaConf.load(path) if path.exists() else OmegaConf.create()


def sweep_tags(summary: Mapping[str, Any], sweep_dir: Path) -> dict[str, list]:
    """W&B tag values of the gathered sweep (its learners, seeds and settings, not the base config's)."""
    tags: dict[str, list] = {"learner": summary["learners"], "shots": [], "fraction": [], "per_class": []}
    tags["seed"] = sorted({int(row["seed"]) for row in ResultsFile(sweep_dir / "results.csv").read()})
    for setting in summary["settings"]:
        tags.setdefault(setting["kind"], []).append(setting["value"])
    return tags


class GatherSweep(Callback):
    """Hydra callback: at the end of a multirun, gather its jobs into one table (if they wrote
    any) and log it, with its plots, as one more W&B run of the experiment's group."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not job_dirs(sweep_dir):
            log.info("no results.csv under %s: nothing to gather", sweep_dir)
            return
        summary = gather(sweep_dir)
        print((sweep_dir / "summary.md").read_text())
        if "logger" in config:
            name = f"{config.get('run_name', 'sweep')}-sweep"
            start = instantiate(config.logger, _partial_=True, run_dir=str(sweep_dir), name=name, tag_values=sweep_tags(summary, sweep_dir))
            run = start(config={"sweep_dir": str(sweep_dir)})
            if run is not None:
                log_comparison(run, summary, summary_table(summary), sweep_dir)

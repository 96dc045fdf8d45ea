"""The tables of BENCHMARKS.md from real runs of the normal app at a budget (configs/budget/).

A job is a preset plus a few overrides, run as ``python experiments/run.py experiment=<preset>
budget=<budget> ...`` in its folder <runs>/<job>/ (rerunning the command resumes it), or a speed
script; benchmark.json beside its outputs keeps command, wall time and hardware. Each block
``<!-- medfew:table NAME -->`` ... ``<!-- /medfew:table -->`` of the markdown file is rewritten
from the runs' summary.json once one of its jobs has finished; the rest is prose, left as it is.

    python experiments/benchmark.py --budget cpu --out BENCHMARKS.md [--only fewshot-bloodcells,...]
    python experiments/benchmark.py --budget smoke 'learners=[prototype_pixels,finetune]'
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from medfew.evaluation.report import SMOKE, format_cell
from medfew.files import write_json, write_text

ROOT = Path(__file__).resolve().parents[1]
ALL_LABELS = ("learners=[finetune]", "protocol.fractions=[1.0]")  # MedMNIST's published setting
RECIPE = ("backbone=resnet18_cifar", "++learner_overrides.finetune.augment=null", "++learner_overrides.finetune.class_weighted=false")
JOBS = {  # job -> overrides of experiments/run.py besides the budget, or a speed script (its printed output)
    "reproduction-breastmnist": ("experiment=breastmnist_label_efficiency", *ALL_LABELS),
    "reproduction-breastmnist-published-recipe": ("experiment=breastmnist_label_efficiency", *ALL_LABELS, *RECIPE),
    "reproduction-pneumoniamnist": ("experiment=pneumoniamnist_label_efficiency", *ALL_LABELS),
    "label_efficiency-breastmnist": ("experiment=breastmnist_label_efficiency",),
    "label_efficiency-pneumoniamnist": ("experiment=pneumoniamnist_label_efficiency",),
    "fewshot-bloodcells": ("experiment=bloodcells_fewshot",),
    "crossdomain-pneumoniamnist": ("experiment=crossdomain", "data.target=pneumoniamnist"),
    "crossdomain-breastmnist": ("experiment=crossdomain", "data.target=breastmnist"),
    "speed-bench_ssl": "experiments/bench_ssl.py",
    "speed-bench_fewshot": "experiments/bench_fewshot.py",
    "speed-bench_loading": "experiments/bench_loading.py",
}
MARKED = re.compile(r"<!-- medfew:table (\S+) -->\n.*?<!-- /medfew:table -->", re.DOTALL)


def command(job: str, budget: str, runs: Path, extra: list[str]) -> list[str]:
    """The normal app with the budget, or a speed script with the budget's ``benchmark.<script>`` arguments."""
    if isinstance(JOBS[job], str):
        with initialize_config_dir(str(ROOT / "configs"), version_base="1.3"):
            arguments = compose("config", overrides=[f"budget={budget}"]).get("benchmark", {}).get(Path(JOBS[job]).stem, [])
        return ["python", JOBS[job], *arguments]
    where = [f"paths.cache_dir={shown(runs / 'cache')}", f"hydra.run.dir={shown(runs / job)}"]  # jobs share SSL runs
    return ["python", "experiments/run.py", *JOBS[job], f"budget={budget}", *extra, "logger=none", *where]


def shown(path: Path) -> str:
    """``path`` relative to the repository when inside it (commands stay copy-pasteable), else absolute."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def hardware() -> str:
    if torch.cuda.is_available():
        return f"GPU: {torch.cuda.get_device_name(0)}; torch {torch.__version__}"
    cpu = re.findall(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text()) if Path("/proc/cpuinfo").exists() else ["CPU"]
    return f"CPU only: {cpu[0].strip()}, {os.cpu_count()} cores; torch {torch.__version__}"


def run_job(argv: list[str], folder: Path) -> None:
    """Run ``argv`` from the repository root unless it finished before; add its wall time to benchmark.json."""
    if finished(folder):
        return
    previous = read(folder, "benchmark.json") or {}
    folder.mkdir(parents=True, exist_ok=True)
    print(f"[benchmark] {shlex.join(argv)}", flush=True)
    start = time.perf_counter()
    with open(folder / "stdout.txt", "w") as out, open(folder / "stderr.txt", "w") as err:
        returncode = subprocess.call([sys.executable, *argv[1:]], cwd=ROOT, stdout=out, stderr=err)
    walls = [*previous.get("wall_s", []), round(time.perf_counter() - start, 1)]
    record = dict(command=shlex.join(argv), returncode=returncode, wall_s=walls, hardware=hardware())
    write_json(folder / "benchmark.json", record)
    if returncode != 0:
        print(f"[benchmark] exit code {returncode}; see {folder / 'stderr.txt'}", flush=True)


def finished(folder: Path) -> bool:
    return (read(folder, "benchmark.json") or {}).get("returncode") == 0


def read(folder: Path, name: str) -> Any:
    """The JSON file ``name`` of a job folder; None when missing."""
    return json.loads((folder / name).read_text()) if (folder / name).exists() else None


def wall(record: dict[str, Any]) -> str:
    """Wall time of the command's recorded runs (a run killed before its record is missing)."""
    return f"{sum(record['wall_s']):.0f} s" + (f" over {len(record['wall_s'])} runs" if len(record["wall_s"]) > 1 else "")


def provenance(folder: Path) -> list[str]:
    """The job's command, wall time and hardware, and what its duplicate-image check found."""
    record, leakage = read(folder, "benchmark.json"), read(folder, "leakage.json") or {}
    lines = [f"- `{record['command']}`", f"  - wall time {wall(record)}; {record['hardware']}"]
    if leakage.get("flagged"):
        kept = "dropped" if leakage["excluded"] else "kept, as in the published protocol"
        lines.append(f"  - leakage check: {leakage['flagged']} val/test images duplicate train images (exact or near); {kept}")
    return lines + [""]


def cell(c: dict[str, Any] | None, paired: bool = False) -> str:
    """report.py's cell text (mean [low, high], n); with ``paired``, Δ and the Holm-corrected Wilcoxon p against the reference."""
    versus = (c or {}).get("vs_reference") or {}
    tested = paired and versus.get("p_wilcoxon_holm") is not None
    return format_cell(c) + (f" (Δ {versus['mean_diff']:+.3f}, p={versus['p_wilcoxon_holm']:.2g})" if tested else "")


def comparison(folders: list[Path]) -> list[str]:
    """One run's tables (learner x setting): acc, auroc, bal_acc; few-shot: acc with Δ and p against the reference."""
    summary = read(folders[0], "summary.json")
    settings, episodic = [s["setting"] for s in summary["settings"]], summary["settings"][0]["kind"] == "shots"
    paired = episodic and summary["reference"] is not None
    versus = f"; Δ, p: paired against `{summary['reference']}` (Wilcoxon signed-rank, Holm-corrected)" if paired else ""
    same = "" if summary["identical_splits"] else " WARNING: learners were scored on different episodes / label subsets."
    out = [f"Cells: mean [{summary['confidence']:.0%} CI], n units; {summary['interval']}{versus}.{same}", ""]
    for metric in ("acc",) if episodic else ("acc", "auroc", "bal_acc"):
        out += [f"{metric}:", "", "| learner | " + " | ".join(settings) + " |", "|---" * (len(settings) + 1) + "|"]
        out += ["| " + " | ".join([lr, *(cell(by.get(s), paired) for s in settings)]) + " |" for lr, by in summary["results"][metric].items()]
        out += [""]
    return out + provenance(folders[0])


def reproduction(folders: list[Path]) -> list[str]:
    """finetune on all labels against the published numbers of the preset's ``published:`` key."""
    out = ["| dataset | setup | seeds | medfew ACC | published ACC | medfew AUC | published AUC | medfew bal. acc |", "|---" * 8 + "|"]
    for folder in folders:
        if not finished(folder):
            out += [f"| {folder.name} | not run | | | | | | |"]
            continue
        summary = read(folder, "summary.json")
        acc, auc, bal = (summary["results"][m]["finetune"]["fraction=1"] for m in ("acc", "auroc", "bal_acc"))
        published = OmegaConf.load(folder / "config_resolved.yaml").get("published") or {}
        setup = "published-recipe" if folder.name.endswith("published-recipe") else "preset"
        out += [
            f"| {summary['dataset'][0]} | {setup} | {acc['n']} | {cell(acc)} | {published.get('acc', '-')} | {cell(auc)} "
            f"| {published.get('auroc', '-')} | {cell(bal)} |"
        ]
    return out + [""] + [line for folder in folders if finished(folder) for line in provenance(folder)]


def printed(folders: list[Path]) -> list[str]:
    """A speed script's output as it printed it."""
    return ["```", *(folders[0] / "stdout.txt").read_text().splitlines(), "```", "", *provenance(folders[0])]


def wall_times(folders: list[Path]) -> list[str]:
    """The wall time of every job."""
    rows = (f"| {f.name} | {wall(read(f, 'benchmark.json')) if finished(f) else 'not run'} |" for f in folders)
    return ["| job | wall time |", "|---|---|", *rows, ""]


TABLES = {  # marked block -> (renderer, its jobs), in the order of BENCHMARKS.md
    "reproduction": (reproduction, [job for job in JOBS if job.startswith("reproduction-")]),
    **{job: (printed if isinstance(how, str) else comparison, [job]) for job, how in JOBS.items() if not job.startswith("reproduction-")},
    "wall-time": (wall_times, list(JOBS)),
}


def render(text: str, runs: Path) -> str:
    """``text`` with each marked block that has a job run under ``runs`` rewritten; everything else as it was."""

    def rewrite(match: re.Match) -> str:
        renderer, jobs = TABLES.get(match.group(1), (None, []))
        folders = [runs / job for job in jobs if finished(runs / job)]
        if not folders:  # not ours, or none of its jobs finished: kept as it is
            return match.group(0)
        smoke = any((read(f, "summary.json") or {}).get("header", {}).get("smoke") for f in folders)
        lines = [f"> **{SMOKE}**", ""] * smoke + renderer([runs / job for job in jobs])
        return "\n".join([f"<!-- medfew:table {match.group(1)} -->", *lines, "<!-- /medfew:table -->"])

    return MARKED.sub(rewrite, text)


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", required=True, choices=sorted(p.stem for p in (ROOT / "configs" / "budget").glob("*.yaml")))
    parser.add_argument("--only", default=",".join(JOBS), help="comma-separated jobs to run (default: all)")
    parser.add_argument("--runs", type=Path, help="job folders (default outputs/benchmark/<budget>)")
    parser.add_argument("--out", type=Path, help="markdown file to fill (default <runs>/BENCHMARKS.md, first a copy of BENCHMARKS.md)")
    parser.add_argument("--render-only", action="store_true", help="rewrite the tables from the jobs that ran; run none")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides added to every run.py job, e.g. 'learners=[knn]'")
    args = parser.parse_args(argv)
    runs = (args.runs or ROOT / "outputs" / "benchmark" / args.budget).resolve()
    out = args.out or runs / "BENCHMARKS.md"
    text = (out if out.exists() else ROOT / "BENCHMARKS.md").read_text()
    if missing := [name for name in TABLES if f"<!-- medfew:table {name} -->" not in text]:  # before hours of runs
        parser.error(f"{out} lacks the blocks {missing}: '<!-- medfew:table NAME -->' ... '<!-- /medfew:table -->'")
    if unknown := [job for job in args.only.split(",") if job not in JOBS]:
        parser.error(f"unknown jobs {unknown}; jobs are {', '.join(JOBS)}")
    for job in [] if args.render_only else args.only.split(","):
        run_job(command(job, args.budget, runs, args.overrides), runs / job)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(out, render(text, runs))
    print(f"[benchmark] wrote {out}")
    return out


if __name__ == "__main__":
    main()

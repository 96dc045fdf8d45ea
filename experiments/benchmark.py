"""BENCHMARKS.md from real runs: reproduction, label efficiency, few-shot, speed, findings.

Every number comes from a run of the one evaluation path (``experiments/run.py`` with Hydra
overrides, or the two speed scripts); each job's command, wall time and hardware are
recorded next to its outputs under ``outputs/benchmark/<budget>/<job>/`` and printed with
its table. Jobs already finished are reused, interrupted ones resume (run.py resumes), so
parts can run separately and merge into the one file:

    python experiments/benchmark.py --budget cpu --parts reproduction,fewshot
    python experiments/benchmark.py --budget cpu --parts speed        # adds to the same file
    python experiments/benchmark.py --budget full                     # every part (hours on CPU)
    python experiments/benchmark.py --smoke                           # seconds; not BENCHMARKS.md
    python experiments/benchmark.py --budget cpu --render-only        # rewrite the file only

A GPU is used automatically when present (run.py's device: auto) and marked in the output.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medfew.evaluation.report import summarize, to_frame
from medfew.evaluation.results import ResultsFile

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("reproduction", "label_efficiency", "fewshot", "crossdomain", "speed")
PUBLISHED = {  # MedMNIST v2 (Yang et al., Scientific Data 2023), Table 3, ResNet-18 (28)
    "breastmnist": {"acc": 0.863, "auroc": 0.901},
    "pneumoniamnist": {"acc": 0.854, "auroc": 0.944},
}
LE_LEARNERS = ("logreg_pixels", "finetune", "ssl_linear_probe", "ssl_prototype", "ssl_finetune", "ssl_finetune_barlow_twins")
PUBLISHED_RECIPE = "-published-recipe"  # job suffix: medfew's finetune set up as MedMNIST's script
PUBLISHED_RECIPE_ARGS = (  # CIFAR-stem ResNet-18, no augmentation, plain cross-entropy
    "backbone=resnet18_cifar", "++learner_overrides.finetune.augment=null", "++learner_overrides.finetune.class_weighted=false",
)
META = ("protonet", "matching_net", "maml", "fomaml", "anil", "metasgd")


@dataclass(frozen=True)
class Budget:
    """How much compute each part gets; every field appears in BENCHMARKS.md."""

    name: str
    statement: str  # the budget in words, with its expected CPU time
    repro_seeds: tuple[int, ...] = (0, 1, 2)
    repro_steps: int = 1500
    repro_eval_every: int = 50
    repro_published_recipe: tuple[str, ...] = ("breastmnist", "pneumoniamnist")  # datasets also run with it
    repro_published_recipe_seeds: tuple[int, ...] = (0, 1, 2)  # its CIFAR stem costs ~9x a step at 28 px
    le_seeds: Mapping[str, tuple[int, ...]] = field(
        default_factory=lambda: {"breastmnist": (0, 1, 2), "pneumoniamnist": (0, 1, 2)}
    )  # label-efficiency datasets and their seeds
    le_learners: tuple[str, ...] = LE_LEARNERS
    le_steps: int = 500
    ssl_epochs: int = 50
    fs_learners: tuple[str, ...] = (
        "logreg_pixels", "prototype_pixels", "prototype", "logreg", "knn", "linear_probe", "finetune",
        "ssl_prototype", "ssl_logreg", "ssl_linear_probe", "ssl_finetune",
        "protonet", "matching_net", "maml", "fomaml", "anil", "metasgd",
    )  # fmt: skip
    fs_episodes: int = 600
    fs_image_size: int = 64
    fs_finetune_steps: int = 100
    meta_steps: int = 1000
    maml_inner_steps: int = 5
    cd_targets: tuple[str, ...] = ("pneumoniamnist", "breastmnist")
    cd_learners: tuple[str, ...] = ("logreg_pixels", "prototype_pixels", "finetune", "ssl_prototype", "protonet", "maml")
    bench_ssl_args: tuple[str, ...] = ()
    bench_fewshot_args: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()  # overrides added to every run.py job (e.g. debug=smoke)


BUDGETS = {
    "full": Budget(
        name="full",
        statement="3 seeds; reproduction 1500 fine-tuning steps (batch 64) with early stopping on val loss; "
        "label efficiency 3 seeds, SSL 50 epochs, 500 fine-tuning steps; few-shot 600 episodes per shot "
        "count at 64 px, every learner, 100 fine-tuning steps per episode, 1000 meta-training steps; cross-domain "
        "600 episodes on both targets. Estimated 10-20 h on 2 CPU cores (not run end to end), 2-3 h on one GPU.",
    ),
    "cpu": Budget(
        name="cpu",
        statement="about 2 hours of 2 idle CPU cores (bf16 autocast where the CPU has it; a resumed job lists the wall "
        "time of its last part and, where recorded, of the earlier ones): "
        "reproduction 3 seeds x 500 fine-tuning steps (batch 64, val check every 25), the published recipe "
        "(CIFAR stem) on BreastMNIST with 1 seed; label efficiency "
        "BreastMNIST 3 seeds and PneumoniaMNIST 1 seed, SSL 10 epochs, 500 fine-tuning steps with early stopping; "
        "few-shot 600 episodes per shot count at 28 px, every learner, 20 fine-tuning steps per episode, 200 "
        "meta-training steps (MAML family: 1 inner step in meta-training, 3 at test), SimCLR 100 epochs for the SSL "
        "learners; cross-domain 600 episodes on both targets; speed scripts at their default settings.",
        repro_steps=500,
        repro_eval_every=25,
        repro_published_recipe=("breastmnist",),
        repro_published_recipe_seeds=(0,),
        le_seeds={"breastmnist": (0, 1, 2), "pneumoniamnist": (0,)},
        ssl_epochs=10,
        fs_image_size=28,
        fs_finetune_steps=20,
        meta_steps=200,
        maml_inner_steps=1,
    ),
    "smoke": Budget(
        name="smoke",
        statement="smoke: checks that the script runs end to end; its numbers mean nothing.",
        repro_seeds=(0,),
        repro_steps=2,
        repro_eval_every=1,
        repro_published_recipe=(),
        le_seeds={"breastmnist": (0,)},
        le_learners=("logreg_pixels", "finetune"),
        le_steps=2,
        ssl_epochs=1,
        fs_learners=("prototype_pixels", "finetune"),
        fs_episodes=2,
        fs_image_size=28,
        fs_finetune_steps=2,
        meta_steps=1,
        cd_targets=("pneumoniamnist",),
        cd_learners=("prototype_pixels", "finetune"),
        bench_ssl_args=("--steps", "1", "--rounds", "1", "--workers", "0"),
        bench_fewshot_args=("--iterations", "1", "--rounds", "1", "--episodes", "5", "--finetune-steps", "2"),
        extra=("debug=smoke", "report.n_resamples=200"),
    ),
}


@dataclass(frozen=True)
class Job:
    """One run: ``args`` are run.py overrides (``script`` None) or a speed script's arguments."""

    part: str
    name: str
    args: tuple[str, ...]
    script: str | None = None

    def command(self, folder: Path) -> list[str]:
        if self.script is not None:
            return ["python", self.script, *self.args]
        cache = f"paths.cache_dir={shown(folder.parent / 'cache')}"  # jobs share SSL pretraining of the same pool
        return ["python", "experiments/run.py", *self.args, "logger=none", cache, f"hydra.run.dir={shown(folder)}"]


def shown(path: Path) -> str:
    """``path`` relative to the repository when inside it (commands stay copy-pasteable), else absolute."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def jobs(budget: Budget, part: str) -> list[Job]:
    """The jobs of one part under ``budget``."""
    b, extra = budget, budget.extra
    seeds = lambda s: f"seeds=[{','.join(map(str, s))}]"  # noqa: E731
    if part == "reproduction":
        return [
            Job(part, f"reproduction-{ds}{suffix}", (
                f"experiment={ds}_label_efficiency", "learners=[finetune]", "protocol.fractions=[1.0]", seeds(run_seeds),
                f"learner_overrides.finetune.steps={b.repro_steps}", f"learner_overrides.finetune.eval_every={b.repro_eval_every}",
                *recipe, *extra,
            ))  # fmt: skip
            for ds in PUBLISHED
            for suffix, recipe, run_seeds in (
                ("", (), b.repro_seeds), (PUBLISHED_RECIPE, PUBLISHED_RECIPE_ARGS, b.repro_published_recipe_seeds)
            )
            if not suffix or ds in b.repro_published_recipe
        ]
    if part == "label_efficiency":
        tuned = ("finetune", "ssl_finetune", "ssl_finetune_barlow_twins")
        steps = [f"learner_overrides.{lr}.steps={b.le_steps}" for lr in tuned if lr in b.le_learners]
        return [
            Job(part, f"label_efficiency-{ds}", (
                f"experiment={ds}_label_efficiency", f"learners=[{','.join(b.le_learners)}]", seeds(b.le_seeds[ds]),
                f"ssl_epochs={b.ssl_epochs}", *steps, *extra,
            ))  # fmt: skip
            for ds in b.le_seeds
        ]
    if part == "fewshot":
        return [
            Job(part, "fewshot-bloodcells", (
                "experiment=bloodcells_fewshot", f"learners=[{','.join(b.fs_learners)}]", f"episodes={b.fs_episodes}",
                f"data.image_size={b.fs_image_size}", *learner_overrides(b, b.fs_learners), *extra,
            ))  # fmt: skip
        ]
    if part == "crossdomain":
        return [
            Job(part, f"crossdomain-{target}", (
                "experiment=crossdomain", f"data.target={target}", f"learners=[{','.join(b.cd_learners)}]",
                f"episodes={b.fs_episodes}", *learner_overrides(b, b.cd_learners), *extra,
            ))  # fmt: skip
            for target in b.cd_targets
        ]
    if part == "speed":
        return [
            Job(part, "speed-bench_ssl", b.bench_ssl_args, script="experiments/bench_ssl.py"),
            Job(part, "speed-bench_fewshot", b.bench_fewshot_args, script="experiments/bench_fewshot.py"),
        ]
    raise ValueError(f"unknown part '{part}'; parts are {', '.join(PARTS)}")


def learner_overrides(b: Budget, learners: Sequence[str]) -> list[str]:
    """Per-learner step counts of the episode parts (smoke leaves them to debug=smoke)."""
    if b.extra:
        return []
    tuned = ("finetune", "linear_probe", "ssl_finetune", "ssl_linear_probe")  # trained per episode
    out = [f"++learner_overrides.{lr}.steps={b.fs_finetune_steps}" for lr in tuned if lr in learners]
    for lr in learners:
        if lr in META:
            out.append(f"++learner_overrides.{lr}.meta_train_steps={b.meta_steps}")
            if lr in ("protonet", "matching_net"):
                out.append(f"++learner_overrides.{lr}.meta_training.steps_per_epoch={min(b.meta_steps, 100)}")
            else:
                out += [
                    f"++learner_overrides.{lr}.meta_training.steps_per_epoch={min(b.meta_steps, 100)}",
                    f"++learner_overrides.{lr}.inner_steps={b.maml_inner_steps}",
                    f"++learner_overrides.{lr}.eval_inner_steps={max(3, b.maml_inner_steps * 2)}",
                ]
    return out


def hardware() -> dict[str, Any]:
    """CPU model, core count and GPU (when CUDA is usable) of this machine."""
    import torch

    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = re.findall(r"model name\s*:\s*(.+)", cpuinfo.read_text())
        cpu = names[0].strip() if names else cpu
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "cores": os.cpu_count(), "gpu": gpu, "torch": torch.__version__}


def run_job(job: Job, folder: Path, rerun: bool = False) -> dict[str, Any]:
    """Run ``job`` (unless it finished before) and record command, wall time and hardware."""
    record_file = folder / "benchmark.json"
    previous = json.loads(record_file.read_text()) if record_file.exists() else {}
    if previous.get("returncode") == 0 and not rerun:
        print(f"[benchmark] {job.name}: finished before ({previous['wall_s']} s), reused", flush=True)
        return previous
    folder.mkdir(parents=True, exist_ok=True)
    command = job.command(folder)
    print(f"[benchmark] {job.name}: {shlex.join(command)}", flush=True)
    env = dict(os.environ, MEDFEW_DATA=os.environ.get("MEDFEW_DATA", str(ROOT.parent / "shared" / "data")))
    rows_before = len(ResultsFile(folder / "results.csv").read())  # > 0: resumed, wall time covers the rest only
    start = time.perf_counter()
    with open(folder / "stdout.txt", "w") as log:
        returncode = subprocess.call([sys.executable, *command[1:]], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    record = {
        "command": shlex.join(command),
        "wall_s": round(time.perf_counter() - start, 1),
        "returncode": returncode,
        "resumed_rows": rows_before,
        "earlier_wall_s": previous.get("earlier_wall_s", 0) + previous.get("wall_s", 0) if rows_before else 0,
        "hardware": hardware(),
        "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    record_file.write_text(json.dumps(record, indent=1))
    if returncode != 0:
        print(f"[benchmark] {job.name} failed ({returncode}); see {folder / 'stdout.txt'}", flush=True)
    return record


# ---------------------------------------------------------------- rendering


def load(job: Job, folder: Path) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(benchmark.json, summary) of a job folder, None where missing.

    A job still running (or cut off) has result rows but no summary.json yet: its rows so far
    are summarised by the runner's own ``summarize`` and the record is marked partial.
    """
    record = json.loads((folder / "benchmark.json").read_text()) if (folder / "benchmark.json").exists() else None
    if (folder / "summary.json").exists() and record is not None:
        return record, json.loads((folder / "summary.json").read_text())
    rows = ResultsFile(folder / "results.csv").read()
    if not rows:
        return record, None
    record = record or {"command": shlex.join(job.command(folder)), "wall_s": float("nan"), "returncode": None}
    return record, summarize(to_frame(rows), ("bal_acc", "auroc", "acc"), "finetune", n_resamples=2000)


def cell(summary: Mapping[str, Any], metric: str, learner: str, setting: str) -> dict[str, Any] | None:
    return summary["results"].get(metric, {}).get(learner, {}).get(setting)


def fmt(c: Mapping[str, Any] | None, p: bool = False) -> str:
    if c is None:
        return "-"
    no_interval = c["ci"] is None or c["ci"] != c["ci"]  # one seed: None (or NaN)
    text = f"{c['mean']:.3f}" if no_interval else f"{c['mean']:.3f} ± {c['ci']:.3f}"
    versus = c.get("vs_reference")
    if p and versus:
        text += f" (Δ {versus['mean_diff']:+.3f}, p={versus['p_wilcoxon']:.2g})"
    return text


def wall_row(name: str, record: Mapping[str, Any]) -> tuple[str, float]:
    """(label, seconds) of a job's wall time: all its parts where they were recorded."""
    if record.get("earlier_wall_s"):
        return f"{name} (sum of its parts)", record["wall_s"] + record["earlier_wall_s"]
    return name + (" (resumed: last part only)" if record.get("resumed_rows") else ""), record["wall_s"]


def provenance(name: str, record: Mapping[str, Any] | None, host: Mapping[str, Any], folder: Path) -> list[str]:
    """The command, wall time and hardware of one job, as markdown lines."""
    if record is None:
        return [f"*{name}: not run yet.*", ""]
    hw = record.get("hardware", host)
    device = f"GPU: {hw['gpu']}" if hw.get("gpu") else f"CPU only: {hw['cpu']}, {hw['cores']} cores"
    if record.get("returncode") is None:
        return [f"- `{record['command']}`", f"  - **partial**: rows finished so far (job still running or cut off); {device}", ""]
    status = "" if record["returncode"] == 0 else f" **(exit code {record['returncode']}: partial)**"
    if record.get("earlier_wall_s"):
        status += f" (resumed: {record['resumed_rows']} result rows came from earlier parts of the job, which took {record['earlier_wall_s']:.0f} s)"
    elif record.get("resumed_rows"):
        status += f" (resumed: {record['resumed_rows']} result rows came from an earlier, interrupted run)"
    return [f"- `{record['command']}`", f"  - wall time {record['wall_s']:.0f} s; {device}{status}", *leakage(folder), ""]


def leakage(folder: Path) -> list[str]:
    """A line on the runner's duplicate-image check (leakage.json), when it flagged images."""
    path = folder / "leakage.json"
    if not path.exists():
        return []
    found = json.loads(path.read_text())
    if not found.get("flagged"):
        return []
    kept = "dropped" if found.get("excluded") else "kept, as in the published protocol"
    return [f"  - leakage check: {found['flagged']} val/test images duplicate train images (exact or near); {kept}"]


def settings(summary: Mapping[str, Any]) -> list[str]:
    return [s["setting"] for s in summary["settings"]]


def finished(budget: Budget, base: Path, host: Mapping[str, Any], part: str):
    """(job, record, summary, provenance lines) of each job of ``part``, from its folder."""
    for job in jobs(budget, part):
        record, summary = load(job, base / job.name)
        yield job, record, summary, provenance(job.name, record, host, base / job.name)


def render(budget: Budget, base: Path) -> tuple[str, dict[str, Any]]:
    """The markdown of every part found under ``base``, and the numbers the findings use."""
    host = hardware()
    facts: dict[str, Any] = {}
    walls: list[tuple[str, float]] = []
    out = [
        "# BENCHMARKS",
        "",
        f"Generated by `python experiments/benchmark.py --budget {budget.name}` from the runs under "
        f"`{shown(base)}/` (each job's command, wall time and hardware below; rerun a command to "
        "reproduce its table, or the script to regenerate this file).",
        "",
        f"**Budget actually used ({budget.name}):** {budget.statement}",
        "",
        f"**Hardware:** {host['cpu']}, {host['cores']} cores visible"
        + (f", GPU {host['gpu']}" if host["gpu"] else ", no GPU (all numbers are CPU runs unless a job says GPU)")
        + f"; torch {host['torch']}. Two torch jobs at once on few cores slow each other many times over: "
        "a wall time is only meaningful for a job that ran alone.",
        "",
        "Intervals: mean ± 95 % CI (Student t) over seeds (label budgets) or episodes (few-shot). "
        "p: Wilcoxon signed-rank p-value of the paired difference Δ against `finetune` on the same units.",
        "",
    ]
    for part in PARTS:
        section, part_facts = RENDERERS[part](budget, base, host)
        out += section
        facts[part] = part_facts
        for job, record, _, _ in finished(budget, base, host, part):
            if record and record["wall_s"] == record["wall_s"]:  # NaN: not finished
                walls.append(wall_row(job.name, record))
    out += ["## Wall time of each job", "", "| job | wall time (s) |", "|---|---|"]
    out += [f"| {name} | {wall:.0f} |" for name, wall in walls] + [""]
    caveat = [] if budget.name == "full" else [
        f"These come from the {budget.name} budget above: short training favours the learners that need none "
        "(pixel prototypes, logistic regression) over fine-tuning, SSL and meta-learning, so read the rankings as "
        "what this budget buys, not as the methods' ceilings; the full budget is the comparison to quote."
    ]
    out += ["## 5. Findings", ""] + [f"- {s}" for s in findings(facts) + caveat] + [""]
    return "\n".join(out), facts


def render_reproduction(budget: Budget, base: Path, host: Mapping[str, Any]) -> tuple[list[str], dict[str, Any]]:
    out = [
        "## 1. Reproduction: supervised ResNet-18 at 28 px, all labels",
        "",
        "`finetune` learner (timm ResNet-18 from random init + linear head, AdamW, class-weighted loss, "
        "augmentation preset of the modality, early stopping on val loss), 100 % of the train labels, "
        "scored on the official test split; versus MedMNIST v2 Table 3 (ResNet-18 (28)).",
        "",
        f"Rows `{PUBLISHED_RECIPE[1:]}`: the same learner set up as MedMNIST's script (CIFAR-stem ResNet-18, "
        "no augmentation, plain cross-entropy), to measure what the preset's differences cost.",
        "",
        "| dataset | setup | seeds | medfew ACC | published ACC | medfew AUC | published AUC | medfew bal. acc |",
        "|---|---|---|---|---|---|---|---|",
    ]
    facts, prov = {}, []
    for job, _, summary, lines in finished(budget, base, host, "reproduction"):
        prov += lines
        ds = job.name.removeprefix("reproduction-").removesuffix(PUBLISHED_RECIPE)
        setup = PUBLISHED_RECIPE[1:] if job.name.endswith(PUBLISHED_RECIPE) else "preset"
        acc, auc, bal = (
            (cell(summary, m, "finetune", "fraction=1") if summary else None) for m in ("acc", "auroc", "bal_acc")
        )
        n = acc["n"] if acc else "-"
        out.append(
            f"| {ds} | {setup} | {n} | {fmt(acc)} | {PUBLISHED[ds]['acc']} | {fmt(auc)} | {PUBLISHED[ds]['auroc']} | {fmt(bal)} |"
        )
        if acc and auc and setup == "preset":
            facts[ds] = {"acc": acc["mean"], "auroc": auc["mean"], "published": PUBLISHED[ds]}
    out += ["", *prov, *why_lower(budget, facts)]
    return out, facts


def why_lower(budget: Budget, facts: Mapping[str, Any]) -> list[str]:
    """The reasons medfew's reproduction falls short, where it does, from the setup's differences."""
    short = [ds for ds, f in facts.items() if f["acc"] < f["published"]["acc"] or f["auroc"] < f["published"]["auroc"]]
    if not short:
        return []
    epochs = {"breastmnist": 546, "pneumoniamnist": 4708}
    seen = ", ".join(f"{ds}: about {budget.repro_steps * 64 / epochs[ds]:.1f} epochs" for ds in short)
    return [
        f"**Why lower ({', '.join(short)}).** Differences between this run and the published recipe "
        "(MedMNIST/experiments, `MedMNIST2D/train_and_eval_pytorch.py` and `models.py`), in order of expected size:",
        "",
        f"1. *Training length.* MedMNIST v2 trains 100 epochs (batch 128, Adam lr 1e-3, x0.1 at epochs 50 "
        f"and 75). This budget ran {budget.repro_steps} steps of batch 64 ({seen}), and early stopping on "
        "val loss can end it sooner.",
        "2. *Input stem.* The published 28 px ResNet-18 is the CIFAR variant (3x3 stride-1 first convolution, "
        "no max-pool: 28x28 maps in the first stage, 4x4 in the last). medfew's `resnet18` is timm's ImageNet "
        "ResNet-18 (7x7 stride-2 convolution + max-pool): measured feature maps for a 28 px input are 7x7 "
        "after the stem, then 7, 4, 2, 1 per stage, so the last stage sees a single position. `backbone=resnet18_cifar` "
        "is the published network: see the published-recipe rows above where they ran.",
        "3. *Model selection and loss.* The published script keeps the best-val-AUC epoch with plain cross-entropy; "
        "the label-efficiency preset stops early on val loss with a class-weighted loss, which trades majority-"
        "class accuracy (ACC) for balanced accuracy (compare the ACC and balanced-accuracy columns).",
        "4. *Augmentation.* The published 28 px runs use no augmentation (ToTensor + Normalize only); medfew "
        "applies the modality preset (configs/augment/ultrasound.yaml, xray.yaml), which slows convergence "
        "at a short budget.",
        "",
    ]


def render_label_efficiency(budget: Budget, base: Path, host: Mapping[str, Any]) -> tuple[list[str], dict[str, Any]]:
    out = [
        "## 2. Label efficiency: 1 %, 10 %, 100 % of the train labels",
        "",
        "Learners: `finetune` (ResNet-18 from scratch), `ssl_finetune` / `ssl_finetune_barlow_twins` (SimCLR / "
        "Barlow Twins, the two methods that learned most in short runs, on the train images without "
        "labels, then full fine-tuning), `ssl_linear_probe` (SimCLR + linear head on frozen features), "
        "`ssl_prototype` (SimCLR + nearest class prototype, ProtoNet's classifier: ProtoNet's episodic "
        "meta-training needs more classes than these 2-class datasets have), `logreg_pixels` (the floor). "
        "Scored on the official test split; goal: 10 % labels reaching the published full-label accuracy.",
        "",
    ]
    facts = {}
    for job, _, summary, lines in finished(budget, base, host, "label_efficiency"):
        ds = job.name.split("-", 1)[1]
        out += [f"### {ds} (published full-label ResNet-18: ACC {PUBLISHED[ds]['acc']}, AUC {PUBLISHED[ds]['auroc']})", ""]
        if summary is not None:
            cols = settings(summary)
            for metric in ("acc", "auroc", "bal_acc"):
                out += [f"{metric}:", "", "| learner | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
                for learner in summary["learners"]:
                    out.append(f"| {learner} | " + " | ".join(fmt(cell(summary, metric, learner, s)) for s in cols) + " |")
                out.append("")
            facts[ds] = {
                lr: {s: cell(summary, "acc", lr, s)["mean"] for s in cols if cell(summary, "acc", lr, s)}
                for lr in summary["learners"]
            } | {"published": PUBLISHED[ds]}
        out += lines
    return out, facts


def render_episodes(title: str, intro: str, part: str):
    """Renderer of an episode part: one table per dataset over the rows of all its jobs.

    Jobs of one dataset share the fixed episode sets (same hash), so their rows are pooled and
    summarised together by the runner's ``summarize``: paired tests against ``finetune``
    hold across jobs (e.g. meta-learners run as a second, parallel job).
    """

    def renderer(budget: Budget, base: Path, host: Mapping[str, Any]) -> tuple[list[str], dict[str, Any]]:
        out, facts, prov = [title, "", intro, ""], {}, []
        rows: dict[str, dict[tuple, dict[str, str]]] = {}
        for job, _, _, lines in finished(budget, base, host, part):
            prov += lines
            episodes = next((a.split("=")[1] for a in job.args if a.startswith("episodes=")), "?")
            for row in ResultsFile(base / job.name / "results.csv").read():
                key = (row["learner"], row["setting"], row["seed"], row["episode"])
                rows.setdefault(f"{row['dataset']}, {episodes}-episode sets", {}).setdefault(key, row)
        for dataset, by_key in rows.items():
            summary = summarize(to_frame(list(by_key.values())), ("acc", "bal_acc"), "finetune")
            cols = settings(summary)
            out += [f"### {dataset}", "", "Accuracy (Δ and p: paired against `finetune` on the same episodes):", ""]
            out += ["| learner | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
            for learner in summary["learners"]:
                out.append(f"| {learner} | " + " | ".join(fmt(cell(summary, "acc", learner, s), p=True) for s in cols) + " |")
            n = {cell(summary, "acc", lr, s)["n"] for lr in summary["learners"] for s in cols if cell(summary, "acc", lr, s)}
            same = "identical for every learner" if summary["identical_splits"] else "NOT identical (split hashes differ)"
            out += ["", f"Episodes per cell: {', '.join(map(str, sorted(n)))}; episode sets {same}.", ""]
            facts[dataset] = {
                lr: {s: cell(summary, "acc", lr, s) for s in cols if cell(summary, "acc", lr, s)} for lr in summary["learners"]
            }
        return out + ["Runs:", "", *prov], facts

    return renderer


def render_speed(budget: Budget, base: Path, host: Mapping[str, Any]) -> tuple[list[str], dict[str, Any]]:
    out = [
        "## 4. Speed",
        "",
        "Output of the two speed scripts as printed (ratios against lightly's and learn2learn's reference "
        "loops, and fine-tuning against NCHW weights); the wall time of every benchmark job is in the table after this section. Ratios measured "
        "on a machine shared with other jobs are noisy: rerun on an idle machine before quoting them.",
        "",
    ]
    facts = {}
    for job, record, _, lines in finished(budget, base, host, "speed"):
        out += [f"### {job.script}", ""]
        stdout = base / job.name / "stdout.txt"
        if record and stdout.exists():
            printed = [ln for ln in stdout.read_text().splitlines() if re.match(r"device|\(|a/b|\s{4}\S|\S+\.npz:", ln)]
            out += ["```", *printed[-12:], "```", ""]
            facts[job.name] = "\n".join(printed)
        out += lines
    return out, facts


RENDERERS = {
    "reproduction": render_reproduction,
    "label_efficiency": render_label_efficiency,
    "fewshot": render_episodes(
        "## 3a. Few-shot: novel PBC blood-cell classes",
        "3-way episodes on the novel classes (lymphocyte, monocyte, neutrophil), 15 queries per class; "
        "learners prepare (meta-train, fit) on the base + val classes only. Seed 0.",
        "fewshot",
    ),
    "crossdomain": render_episodes(
        "## 3b. Cross-domain few-shot: meta-train on blood cells + brain MRI, test 2-way on MedMNIST",
        "Base / val classes: PBC blood cells and brain MRI at 28 px grey; test: 2-way episodes of the "
        "target's classes, never seen in preparation.",
        "crossdomain",
    ),
    "speed": render_speed,
}


def findings(facts: Mapping[str, Any]) -> list[str]:
    """Plain sentences computed from the numbers of every part that ran."""
    out = []
    repro = facts.get("reproduction", {})
    if repro:
        gaps = "; ".join(
            f"{ds} ACC {f['acc']:.3f} vs {f['published']['acc']} (AUC {f['auroc']:.3f} vs {f['published']['auroc']})"
            for ds, f in repro.items()
        )
        out.append(f"Reproduction at this budget: {gaps}; the reasons for the gap are listed in part 1.")
    for part in ("fewshot", "crossdomain"):
        for job, by_learner in facts.get(part, {}).items():
            out.append(f"{job}: " + "; ".join(best_versus_finetune(by_learner)) + ".")
    out += finetune_verdict([by_learner for part in ("fewshot", "crossdomain") for by_learner in facts.get(part, {}).values()])
    for ds, by_learner in facts.get("label_efficiency", {}).items():
        published = by_learner.pop("published")
        ten = {lr: s["fraction=0.1"] for lr, s in by_learner.items() if "fraction=0.1" in s}
        if ten:
            best = max(ten, key=ten.get)
            reached = "reaches" if ten[best] >= published["acc"] else "does not reach"
            others = ", ".join(f"`{lr}` {acc:.3f}" for lr, acc in ten.items() if lr != best)
            out.append(
                f"{ds} with 10 % of labels: best is `{best}` (ACC {ten[best]:.3f}), which {reached} the published "
                f"full-label ACC {published['acc']} (others: {others})."
            )
    speed = facts.get("speed", {})
    ratios = [m.group(0) for text in speed.values() for m in re.finditer(r"a/b = [\d.]+|medfew / bare = [\d.]+|ratio [\d.]+x", text)]
    if ratios:
        out.append(f"Speed ratios measured: {', '.join(dict.fromkeys(ratios))} (see part 4 for what each compares).")
    return out


def finetune_verdict(tables: Sequence[Mapping[str, Mapping[str, Any]]], alpha: float = 0.05) -> list[str]:
    """Whether fine-tuning held up as the strong few-shot baseline the literature reports."""
    cells = [(table, s) for table in tables if "finetune" in table for s in table["finetune"]]
    if not cells:
        return []

    def wins(versus: Mapping[str, Any] | None) -> bool:
        return versus is not None and versus["mean_diff"] > 0 and versus["p_wilcoxon"] < alpha

    beaten = sum(any(wins(c[s]["vs_reference"]) for c in table.values() if s in c) for table, s in cells)
    return [
        f"Fine-tuning, the strong few-shot baseline of the literature, was beaten (p < {alpha}) in {beaten} of "
        f"{len(cells)} episode cells here; but medfew's `finetune` starts from random weights, while the literature's "
        "baseline adapts pretrained features (Chen et al. 2019; Tian et al. 2020: logistic regression on them, "
        "medfew's `ssl_logreg` in part 3a), so this says a from-scratch network is no few-shot baseline."
    ]


def best_versus_finetune(by_learner: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Per setting: the best learner, its margin over finetune and the paired p-value."""
    found = sorted({s for cells in by_learner.values() for s in cells}, key=lambda s: float(s.split("=")[1]))
    out = []
    for setting in found:
        cells = {lr: c[setting] for lr, c in by_learner.items() if setting in c}
        best, ft = max(cells, key=lambda lr: cells[lr]["mean"]), cells.get("finetune")
        if ft is None or best == "finetune" or cells[best]["vs_reference"] is None:
            out.append(f"{setting} best `{best}` {cells[best]['mean']:.3f}")
        else:
            v = cells[best]["vs_reference"]
            out.append(
                f"{setting} best `{best}` {cells[best]['mean']:.3f} vs `finetune` {ft['mean']:.3f} "
                f"(Δ {v['mean_diff']:+.3f}, p={v['p_wilcoxon']:.2g})"
            )
    return out


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", choices=sorted(BUDGETS), default="full")
    parser.add_argument("--smoke", action="store_true", help="same as --budget smoke")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    parser.add_argument("--runs", type=Path, default=None, help="job folders (default outputs/benchmark/<budget>)")
    parser.add_argument("--out", type=Path, default=None, help="markdown file (default BENCHMARKS.md; smoke: in --runs)")
    parser.add_argument("--only", default=None, help="comma-separated job names within --parts (default: all)")
    parser.add_argument("--render-only", action="store_true", help="rewrite the markdown from finished jobs only")
    parser.add_argument("--rerun", action="store_true", help="run jobs again even when recorded as finished")
    args = parser.parse_args(argv)
    budget = BUDGETS["smoke" if args.smoke else args.budget]
    base = (args.runs or ROOT / "outputs" / "benchmark" / budget.name).resolve()
    out = args.out or (base / "BENCHMARKS.md" if budget.name == "smoke" else ROOT / "BENCHMARKS.md")
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}; parts are {', '.join(PARTS)}")
    if not args.render_only:
        for part in parts:
            for job in jobs(budget, part):
                if args.only is None or job.name in args.only.split(","):
                    run_job(job, base / job.name, args.rerun)
    text, _ = render(budget, base)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"[benchmark] wrote {out}")
    return out


if __name__ == "__main__":
    main()

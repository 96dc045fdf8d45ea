"""SSL quality on a small pool: every method at one fixed budget, with its shipped settings.

    python experiments/bench_ssl_quality.py [--methods simclr,byol] [--steps 150] [--long]

PBC blood cells (8 classes), 50 labelled images per class held out as the kNN monitor (400),
the other 1600 images the unlabeled pool. Each method runs through the same path as
``medfew pretrain`` (configs/pretrain.yaml with ``ssl=<method>``: the shipped configs, with
only the budget, batch size, backbone and resolution set here) and prints one line: kNN accuracy
(k = 20, cosine) and the collapse signal (``embedding_std``: about 1/sqrt(D) when spread, 0 when
collapsed) of the encoder's monitor features before and after, the steps and the wall time. A
first line gives the random-initialised backbone (the "before" of every method) and the same
network with its BatchNorm statistics re-estimated on the pool, a fairer floor; ``--supervised``
adds the ceiling: the same network trained on the pool's labels for the same budget, with the SSL views'
augmentation (AdamW 1e-3).

Run folders (knn.csv, pretrain.json, logs) go under ``--out``; a finished method is read back,
not retrained. ``--long`` is the longer budget (1000 steps of 128); the default fits a few
minutes per method on 2 CPU cores. On a crowded machine, ``OMP_NUM_THREADS=1`` keeps torch's
thread pool from stalling.
"""

from __future__ import annotations

import argparse
import copy
import csv
import math
import time
from collections.abc import Iterable
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn

from medfew.console import configure_console
from medfew.data import ImageData, preprocess, to_float
from medfew.learners.finetune import FineTune
from medfew.models import open_residual_branches
from medfew.ssl import METHODS, pool_and_monitor
from medfew.ssl.monitor import embed, embedding_std, halves, knn_scores

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SHORT = {"steps": 150, "batch_size": 64}
LONG = {"steps": 1000, "batch_size": 128}


def config(method: str, args: argparse.Namespace) -> DictConfig:
    overrides = [
        f"ssl={method}", f"backbone={args.backbone}", "augment=microscopy", f"data.image_size={args.image_size}",
        f"ssl.steps={args.steps}", "ssl.epochs=null", f"ssl.batch_size={args.batch_size}", "logger=none", f"seed={args.seed}",
        f"monitor_per_class={args.monitor_per_class}", "trainer.enable_progress_bar=false",
        f"ssl.zero_init_last={str(args.zero_init_last).lower()}", *args.override,
    ]
    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        return compose("pretrain", overrides=overrides)


def measure(encoder: nn.Module, monitor: ImageData, k: int) -> tuple[float, float]:
    """(kNN accuracy, embedding std) of ``encoder`` on the monitor's bank / query halves."""
    bank, query = halves(monitor)
    bank_features, query_features = embed(encoder, bank.images), embed(encoder, query.images)
    return knn_scores(bank_features, bank, query_features, query, k), embedding_std(torch.cat([bank_features, query_features]))


def recalibrated(encoder: nn.Module, pool: ImageData) -> nn.Module:
    """``encoder`` with its BatchNorm running statistics re-estimated on the pool (no weight changes)."""
    norms = [m for m in encoder.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over the pool
    encoder.train()
    with torch.no_grad():
        for chunk in pool.images.split(256):
            encoder(to_float(chunk))
    return encoder.eval()


def supervised(encoder: nn.Module, pool: ImageData, augment: nn.Module, args: argparse.Namespace) -> nn.Module:
    """A copy of ``encoder`` trained on the labelled ``pool`` for the SSL budget: linear head, AdamW 1e-3,
    ``augment`` on every batch."""
    trainer = FineTune(copy.deepcopy(encoder), steps=args.steps, batch_size=args.batch_size, lr=1e-3, augment=augment, channels_last=False)
    head = trainer.new_head(pool.images, pool.labels, pool.n_classes)
    trainer.fit(trainer.backbone, head, pool.images, pool.labels, None, None, torch.Generator().manual_seed(args.seed))
    return trainer.backbone.eval()


def run_method(method: str, args: argparse.Namespace, pool: ImageData, monitor: ImageData) -> dict:
    cfg = config(method, args)
    workdir = Path(args.out) / method
    start = time.perf_counter()
    instantiate(cfg.ssl)(pool, workdir, args.seed, monitor=monitor)
    wall = time.perf_counter() - start
    with (workdir / "knn.csv").open() as f:
        return summarise(method, list(csv.DictReader(f)), wall)


def summarise(method: str, rows: list[dict], wall: float) -> dict:
    """One results.csv row from a method's kNN rows (step, knn_acc, embedding_std), first and last."""
    first, last = rows[0], rows[-1]
    return {
        "method": method, "knn_before": float(first["knn_acc"]), "knn_after": float(last["knn_acc"]),
        "std_before": float(first["embedding_std"]), "std_after": float(last["embedding_std"]),
        "steps": int(last["step"]), "wall_s": wall,
    }


def method_line(label: str, row: dict) -> str:
    return (
        f"{label:<18} kNN {row['knn_before']:.3f} -> {row['knn_after']:.3f} ({row['knn_after'] - row['knn_before']:+.3f})"
        f"  std {row['std_before']:.4f} -> {row['std_after']:.4f}  steps {row['steps']}  wall {row['wall_s']:.0f} s"
    )


def write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def parser(description: str, methods: Iterable[str]) -> argparse.ArgumentParser:
    """The options shared with bench_ssl_lightly.py: budget, network, monitor, seed, threads, run folders."""
    cli = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("--methods", default=",".join(methods), help="comma-separated, from: " + ", ".join(methods))
    cli.add_argument("--steps", type=int, default=None, help=f"optimiser steps (default {SHORT['steps']}; --long: {LONG['steps']})")
    cli.add_argument("--batch-size", type=int, default=None, help=f"default {SHORT['batch_size']} (--long: {LONG['batch_size']})")
    cli.add_argument("--long", action="store_true", help="the longer budget")
    cli.add_argument("--backbone", default="resnet18", help="a configs/backbone name")
    cli.add_argument("--image-size", type=int, default=28)
    cli.add_argument("--zero-init-last", action="store_true", help="keep timm's zero-initialised residual branches (ssl.zero_init_last=true)")
    cli.add_argument("--monitor-per-class", type=int, default=50)
    cli.add_argument("--seed", type=int, default=0)
    cli.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    cli.add_argument("--override", action="append", default=[], help="extra Hydra override of configs/pretrain.yaml, repeatable")
    cli.add_argument("--out", default=None, help="run folders (default outputs/<script>/<budget>)")
    return cli


def start(args: argparse.Namespace, methods: Iterable[str], script: str) -> tuple[DictConfig, ImageData, ImageData, nn.Module]:
    """Check and complete ``args``; (config, labelled pool, monitor, the random network every method starts
    from), after printing the floor: the random network's kNN, and with its BatchNorm statistics on the pool."""
    configure_console()
    budget = LONG if args.long else SHORT
    args.steps = args.steps or budget["steps"]
    args.batch_size = args.batch_size or budget["batch_size"]
    args.out = args.out or f"outputs/{script}/{args.backbone}-{args.image_size}px-{args.steps}x{args.batch_size}"
    args.methods = args.methods.split(",")
    unknown = [m for m in args.methods if m not in methods]
    if unknown:
        raise SystemExit(f"unknown methods {unknown}; valid ones are {', '.join(methods)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = config(args.methods[0], args)
    data = preprocess(instantiate(cfg.data.source), cfg.data.image_size, cfg.data.channels)
    labelled_pool, monitor = pool_and_monitor(data, cfg.monitor_per_class, cfg.seed, keep_labels=True)
    pl.seed_everything(args.seed, verbose=False)  # pretrain seeds the same way: this is every method's start
    encoder = instantiate(cfg.backbone)()
    if not args.zero_init_last:
        open_residual_branches(encoder)  # as pretrain starts it
    knn0, std0 = measure(encoder, monitor, cfg.ssl.knn_k)
    knn1, std1 = measure(recalibrated(copy.deepcopy(encoder), labelled_pool), monitor, cfg.ssl.knn_k)
    print(
        f"PBC {cfg.data.image_size} px, {args.backbone}, pool {len(labelled_pool)}, monitor {len(monitor)}; "
        f"budget {args.steps} steps x batch {args.batch_size}; torch threads {torch.get_num_threads()}"
    )
    print(f"{'random init':<14} kNN {knn0:.3f}  std {std0:.4f}  (1/sqrt(D) = {1 / math.sqrt(encoder.num_features):.4f})")
    print(f"{'  BN on pool':<14} kNN {knn1:.3f}  std {std1:.4f}", flush=True)
    return cfg, labelled_pool, monitor, encoder


def main() -> None:
    cli = parser(__doc__, METHODS)
    cli.add_argument("--supervised", action="store_true", help="also train the network on the pool's labels: the monitor's ceiling")
    args = cli.parse_args()
    cfg, labelled_pool, monitor, encoder = start(args, METHODS, "bench_ssl_quality")
    pool = labelled_pool.unlabeled()
    if args.supervised:
        begin = time.perf_counter()
        knn2, std2 = measure(supervised(encoder, labelled_pool, instantiate(cfg.augment), args), monitor, cfg.ssl.knn_k)
        print(f"{'supervised':<14} kNN {knn2:.3f}  std {std2:.4f}  (pool labels, {args.steps} steps, {time.perf_counter() - begin:.0f} s)", flush=True)
    rows = []
    for method in args.methods:
        rows.append(run_method(method, args, pool, monitor))
        print(method_line(method, rows[-1]), flush=True)
    write_csv(Path(args.out) / "results.csv", rows)


if __name__ == "__main__":
    main()

"""How well ``medfew audit label_issues=true`` finds planted label errors, per issue-finder learner.

Writes an image folder per dataset from the bundled data with a seeded share of labels flipped
(symmetric), then for each learner: out-of-fold probabilities (grouped 5-fold), cleanlab's flags and
ranking, and three numbers against the planted flips: precision among the top |flipped| ranked images,
recall and precision of the whole flagged list; and the seconds it took.

    python experiments/bench_label_issues.py --out <folder> --datasets breastmnist bloodcells \\
        --learners logreg_pixels finetune ensemble
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_module
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict
from PIL import Image

from medfew.config import apply_knobs
from medfew.data import data_root
from medfew.data.dataset import ImageData, concat
from medfew.data.label_noise import flip_labels
from medfew.data.medmnist import load_medmnist
from medfew.data.npz import load_labelled_npz
from medfew.evaluation.folds import load_data
from medfew.evaluation.label_issues import find_issues, learner_builder
from medfew.learners.registry import with_learner

SOURCES = {
    "breastmnist": (lambda root: load_medmnist("breastmnist", root, download=False), 28, 1),
    "bloodcells": (lambda root: load_labelled_npz("pbc_bloodcells_64.npz", root), 64, 3),
    "brain_mri": (lambda root: load_labelled_npz("brain_tumor_mri_64.npz", root), 64, 1),
}


def all_images(data: ImageData) -> ImageData:
    """Every split of ``data`` as one labelled set."""
    parts = [data.select_split(s) for s in data.split_names()] or [data]
    return concat(parts, name=data.name)


def write_folder(data: ImageData, rate: float, seed: int, folder: Path) -> set[str]:
    """``data`` as folder/<class>/<index>.png with ``rate`` of its labels flipped; returns the flipped files."""
    labels = flip_labels(data.labels, rate, data.n_classes, "symmetric", torch.Generator().manual_seed(seed))
    flipped = set()
    for i, (image, label) in enumerate(zip(data.images, labels.tolist())):
        name = f"{data.class_names[label]}/{i:05d}.png"
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        array = image.permute(1, 2, 0).numpy()
        Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(path)
        if label != int(data.labels[i]):
            flipped.add(name)
    return flipped


def scores(issues, files: list[str], flipped: set[str]) -> dict[str, float]:
    """Precision among the top |flipped| ranked images, recall and precision of the flagged list."""
    order = np.argsort(issues.quality, kind="stable")[: len(flipped)]
    flagged = {files[i] for i in issues.ranked}
    return {
        "precision_at_flipped": sum(files[i] in flipped for i in order) / len(flipped),
        "flagged": len(flagged),
        "recall": len(flagged & flipped) / len(flipped),
        "precision": len(flagged & flipped) / max(len(flagged), 1),
        "noise_rate_estimate": issues.noise_rate,
    }


def measure(folder: Path, size: int, channels: int, learner: str, flipped: set[str], out: Path, extra: list[str]) -> dict[str, float]:
    overrides = [*extra, 
        "data=image_folder", f"data.source.path={folder}", f"data.image_size={size}", f"data.channels={channels}",
        f"paths.output_dir={out}", f"paths.root_dir={out}", f"issue_finder.learner={learner}",
    ]  # fmt: skip
    with initialize_config_module("medfew.configs", version_base="1.3"):
        cfg = compose("audit", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg.hydra
    node = with_learner(cfg, learner, cfg.issue_finder.learner_overrides)
    apply_knobs(node.learner, cfg.knobs)
    data = load_data(cfg.data)
    start = time.perf_counter()
    issues = find_issues(data, learner_builder(node, learner, "cpu"), cfg.issue_finder.folds, 0, cfg.threshold, out / learner)
    seconds = time.perf_counter() - start
    return scores(issues, [str(f) for f in data.filenames], flipped) | {"seconds": round(seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--datasets", nargs="+", default=list(SOURCES), choices=list(SOURCES))
    parser.add_argument("--learners", nargs="+", default=["logreg_pixels"])
    parser.add_argument("--rate", type=float, default=0.08)
    parser.add_argument("--flip-seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--overrides", nargs="*", default=[], help="more audit config overrides, e.g. +knobs.pretrain.steps=1000")
    args = parser.parse_args()
    rows = []
    for dataset in args.datasets:
        load, size, channels = SOURCES[dataset]
        data = all_images(load(data_root()))
        for flip_seed in args.flip_seeds:
            folder = args.out / f"{dataset}-flip{args.rate:g}-seed{flip_seed}"
            flipped = write_folder(data, args.rate, flip_seed, folder)
            for learner in args.learners:
                found = measure(folder, size, channels, learner, flipped, args.out / "runs" / folder.name, args.overrides)
                row = {"dataset": dataset, "flip_seed": flip_seed, "flipped": len(flipped), "learner": learner, **found}
                print(row, flush=True)
                rows.append(row)
    path = args.out / "label_issues_bench.csv"
    new = not path.exists()
    with path.open("a", newline="") as f:  # rows of earlier calls stay
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        if new:
            writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()

"""Known answers for every learner in configs/learner/, found by name, so a new learner is covered
with no new code: near 1.0 where a child could separate the classes (by brightness, and by texture),
chance on random labels, and stored metrics that recompute from the stored confusion matrices.

Each folder of generated PNGs goes through one 3-fold comparison of all learners (labels: all of
the training folds) at a small budget: the smoke run's sizes, with enough fine-tuning and inner-loop
steps to learn a trivial task. A learner whose weights come from a hub (``backbone.pretrained:
timm``) gets a randomly initialised state dict of its backbone from a local file instead.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from omegaconf import OmegaConf
from PIL import Image
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

from medfew.evaluation import compare
from medfew.evaluation.results import ResultsFile
from medfew.learners.registry import CONFIG_DIR, with_learner

LEARNERS = sorted(path.stem for path in (CONFIG_DIR / "learner").glob("*.yaml"))
FOLDS = 3
BUDGET = [
    "debug=smoke", f"data.folds={FOLDS}", "data.split_fractions={train: 0.6, val: 0.2, test: 0.2}", "knobs.steps=30", "knobs.eval_every=10", "+knobs.batch_size=16",
    "knobs.inner_steps=null", "knobs.eval_inner_steps=10", "+knobs.pretrain.steps=2",
]  # fmt: skip
SIDE, NOISE = 32, 25.0


def save_pngs(folder: Path, images: dict[str, list[np.ndarray]]) -> Path:
    for name, members in images.items():
        (folder / name).mkdir(parents=True)
        for i, image in enumerate(members):
            Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(folder / name / f"{name}{i}.png")
    return folder


def separable(rng: np.random.Generator, n: int = 24) -> dict[str, list[np.ndarray]]:
    """Stripes, horizontal or vertical, on a dark or a bright ground (levels 60 and 190), with noise:
    four classes, told apart by brightness and by texture."""
    rows, columns = np.mgrid[:SIDE, :SIDE]
    stripes = {"horizontal": np.sign(np.sin(np.pi * rows / 4 + 0.5)), "vertical": np.sign(np.sin(np.pi * columns / 4 + 0.5))}
    return {
        f"{ground}-{direction}": [level + 40 * pattern + rng.normal(0, NOISE, (SIDE, SIDE)) for _ in range(n)]
        for ground, level in (("dark", 60), ("bright", 190))
        for direction, pattern in stripes.items()
    }


def random_labels(rng: np.random.Generator, counts: tuple[int, ...] = (48, 30, 18)) -> dict[str, list[np.ndarray]]:
    """Noise images dealt at random into three classes of unequal size."""
    return {f"class{c}": [rng.normal(128, 50, (SIDE, SIDE)) for _ in range(count)] for c, count in enumerate(counts)}


def local_weights(root, tmp: Path) -> list[str]:
    """Overrides that give each hub-weights learner a local random-init state dict of its backbone."""
    overrides = []
    for name in LEARNERS:
        backbone = OmegaConf.select(with_learner(root, name).learner, "backbone")
        if backbone is not None and OmegaConf.select(backbone, "pretrained") == "timm":
            path = tmp / f"{backbone.name}.pth"
            if not path.exists():
                torch.save(timm.create_model(backbone.name, pretrained=False).state_dict(), path)
            overrides.append(f"+learner_overrides.{name}.backbone.pretrained={path}")
    return overrides


def run_all(compose_root, tmp: Path, name: str, images: dict[str, list[np.ndarray]]) -> tuple[dict, list[dict]]:
    """(summary.json, results.csv rows) of one k-fold comparison of every learner on ``images``."""
    folder = save_pngs(tmp / name, images)
    overrides = ["data=image_folder", f"data.source.path={folder}", f"data.name={name}", "data.split=kfold"]
    overrides += ["protocol.fractions=[1.0]", f"learners=[{','.join(LEARNERS)}]", "report.reference=null", *BUDGET]
    out = tmp / f"{name}-run"
    cfg = compose_root("config", out, overrides + local_weights(compose_root("config", out, overrides), tmp))
    compare(cfg)
    return json.loads((out / "summary.json").read_text()), ResultsFile(out / "results.csv").read()


@pytest.fixture(scope="module")
def known(compose_root_module, tmp_path_factory) -> dict[str, tuple[dict, list[dict]]]:
    tmp, rng = tmp_path_factory.mktemp("known_answers"), np.random.default_rng(0)
    made = {"separable": separable(rng), "random": random_labels(rng)}
    return {name: run_all(compose_root_module, tmp, name, images) for name, images in made.items()}


@pytest.mark.parametrize("learner", LEARNERS)
@pytest.mark.parametrize("cue", ["dark", "horizontal"])
def test_classes_a_child_separates_are_separated(known, cue, learner):
    """Pooled over the folds, >= 0.95 of the images are put in a class of the right brightness (dark or
    bright ground), and >= 0.95 in a class of the right texture (horizontal or vertical stripes)."""
    rows = known["separable"][1]
    classes = json.loads(next(row for row in rows if row["learner"] == learner)["confusion"])["classes"]
    side = np.array([cue in name.split("-") for name in classes])
    counts = pooled_confusion(rows, learner)
    right = counts[np.ix_(side, side)].sum() + counts[np.ix_(~side, ~side)].sum()
    assert right / counts.sum() >= 0.95, f"{learner}: {right / counts.sum():.3f} of the images on the right side of {cue}"


def pooled_confusion(rows: list[dict], learner: str) -> np.ndarray:
    """The confusion counts of ``learner`` summed over the folds (each image is tested once)."""
    return sum(np.array(json.loads(row["confusion"])["counts"]) for row in rows if row["learner"] == learner)


@pytest.mark.parametrize("learner", LEARNERS)
def test_random_labels_score_chance(known, learner):
    """Pooled over the folds, balanced accuracy is within 3.3 standard errors of 1 / classes; the bound
    on each recall's variance, 1 / (4 n_c), holds whatever the learner predicts."""
    counts = pooled_confusion(known["random"][1], learner)
    recall, n = counts.diagonal() / counts.sum(axis=1), counts.sum(axis=1)
    bound = 3.3 * np.sqrt(np.sum(1 / (4 * n))) / len(n)
    assert abs(recall.mean() - 1 / len(n)) <= bound, f"{learner}: balanced accuracy {recall.mean():.3f} on random labels"


@pytest.mark.parametrize("learner", LEARNERS)
def test_metrics_recompute_from_the_stored_confusion_matrix(known, learner):
    """On imbalanced classes with random labels (errors everywhere), every row's accuracy, balanced
    accuracy and macro-F1 equal scikit-learn's on the predictions its confusion matrix records."""
    rows = [row for row in known["random"][1] if row["learner"] == learner]
    assert len(rows) == FOLDS
    for row in rows:
        counts = np.array(json.loads(row["confusion"])["counts"])
        true, predicted = zip(*[(i, j) for (i, j), k in np.ndenumerate(counts) for _ in range(k)])
        present = sorted(set(true))
        expected = {
            "acc": accuracy_score(true, predicted),
            "bal_acc": balanced_accuracy_score(true, predicted),
            "macro_f1": f1_score(true, predicted, labels=present, average="macro", zero_division=0),
        }
        for metric, value in expected.items():
            assert float(row[metric]) == pytest.approx(value, abs=1e-6), f"{learner}, {row['fold']}: {metric}"

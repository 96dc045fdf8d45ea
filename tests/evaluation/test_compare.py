"""The comparison runner: identical episodes for all learners, resume, learners found by name."""

import csv
import importlib
import json
from pathlib import Path

import pytest

from medfew.evaluation import compare
from medfew.evaluation.metrics import METRICS
from medfew.evaluation.results import row_key


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_all_learners_see_identical_episodes(bloodcells, compose_root, tmp_path: Path):
    cfg = compose_root(
        "config",
        tmp_path,
        [
            "data=bloodcells", "data.image_size=32", "protocol=episodes", "protocol.shots=[1,5]",
            "protocol.n_episodes=3", "protocol.n_query=5", "seeds=[0]", "backbone=conv4",
            "learners=[prototype_pixels,logreg_pixels,prototype]", "report.reference=prototype_pixels",
        ],
    )  # fmt: skip
    summary = compare(cfg)
    rows = read_rows(tmp_path / "results.csv")
    assert len(rows) == 3 * 2 * 3  # learners x shots x episodes
    for shots in ("shots=1", "shots=5"):
        hashes = {r["learner"]: r["split_hash"] for r in rows if r["setting"] == shots}
        assert len(set(hashes.values())) == 1 and len(hashes) == 3
    assert summary["identical_splits"]
    # 3-way tasks: every feature-based learner beats chance (1/3) on the novel blood cells
    for learner, cells in summary["results"]["acc"].items():
        assert cells["shots=5"]["mean"] > 0.45, learner
    assert (tmp_path / "summary.md").exists() and (tmp_path / "label_efficiency_shots.png").exists()


def test_interrupted_comparison_resumes_without_duplicates(breastmnist, compose_root, tmp_path: Path):
    overrides = [
        "protocol.per_class=[5]", "protocol.fractions=[0.1]", "seeds=[0,1]",
        "learners=[prototype_pixels,logreg_pixels]", "report.reference=logreg_pixels",
    ]  # fmt: skip
    compare(compose_root("config", tmp_path, overrides))
    path = tmp_path / "results.csv"
    complete = read_rows(path)
    assert len(complete) == 2 * 2 * 2
    with path.open("w", newline="") as f:  # as if killed after three blocks
        writer = csv.DictWriter(f, fieldnames=list(complete[0]))
        writer.writeheader()
        writer.writerows(complete[:3])
    compare(compose_root("config", tmp_path, overrides))
    resumed = read_rows(path)
    assert resumed[:3] == complete[:3]  # kept, not recomputed
    assert len({row_key(r) for r in resumed}) == len(resumed) == len(complete)
    by_key = lambda rows: {(row_key(r), r["episode"]): r for r in rows}  # noqa: E731
    complete, resumed = by_key(complete), by_key(resumed)
    assert resumed.keys() == complete.keys()
    for key, row in resumed.items():  # same seeds, same numbers (exact on CPU; GPU kernels may differ in the last digits)
        assert [float(row[m]) for m in METRICS] == pytest.approx([float(complete[key][m]) for m in METRICS], abs=1e-5)


class Killed(Exception):
    pass


def test_a_run_killed_inside_a_block_keeps_the_tasks_it_scored(bloodcells, compose_root, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    runner = importlib.import_module("medfew.evaluation.compare")  # the module; the package exports the function
    overrides = [
        "data=bloodcells", "data.image_size=32", "protocol=episodes", "protocol.shots=[1,5]", "protocol.n_episodes=4",
        "protocol.n_query=5", "seeds=[0]", "backbone=conv4", "learners=[prototype,prototype_pixels]",
        "report.reference=prototype_pixels", "logger=none",
    ]  # fmt: skip
    compare(compose_root("config", tmp_path / "straight", overrides))
    calls = []

    def score(*args):
        calls.append(args[2].episode)
        if calls == [0, 1, 2, 3, 0, 1]:  # first run, prototype shots=5 episode 1: 4 + 1 tasks scored
            raise Killed
        return real_score(*args)

    real_score = runner.score
    monkeypatch.setattr(runner, "score", score)
    monkeypatch.setattr(runner, "SAVE_EVERY_S", 0.0)
    with pytest.raises(Killed):
        compare(compose_root("config", tmp_path / "killed", overrides))
    kept = read_rows(tmp_path / "killed" / "results.csv")
    assert [(r["setting"], r["episode"]) for r in kept] == [("shots=1", str(e)) for e in range(4)] + [("shots=5", "0")]

    calls.clear()
    compare(compose_root("config", tmp_path / "killed", overrides))
    assert calls == [1, 2, 3] + [0, 1, 2, 3] * 2  # the rest of prototype shots=5, then prototype_pixels
    resumed = read_rows(tmp_path / "killed" / "results.csv")
    assert resumed[:5] == kept
    identity = lambda row: (row["learner"], row["setting"], row["episode"])  # noqa: E731
    straight = {identity(r): r for r in read_rows(tmp_path / "straight" / "results.csv")}
    assert sorted(map(identity, resumed)) == sorted(straight)
    for row in resumed:
        assert [row[m] for m in METRICS] == [straight[identity(row)][m] for m in METRICS]


LEARNER_FILE = '''
import torch
from medfew.learners.base import Learner


class ClassPrior(Learner):
    """Predicts the support set's class frequencies for every query image (a chance-level learner)."""

    def adapt(self, support, support_labels, val=None):
        return torch.bincount(support_labels).float() / len(support_labels)

    def predict(self, state, query):
        return state.expand(len(query), -1)
'''


def test_a_new_learner_is_one_file_and_one_config(breastmnist, compose_root, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "my_prior.py").write_text(LEARNER_FILE)
    (tmp_path / "configs" / "learner").mkdir(parents=True)
    (tmp_path / "configs" / "learner" / "class_prior.yaml").write_text("_target_: my_prior.ClassPrior\n")
    monkeypatch.syspath_prepend(str(tmp_path / "code"))
    out = tmp_path / "run"
    cfg = compose_root(
        "config",
        out,
        [
            f"hydra.searchpath=[file://{tmp_path / 'configs'}]", "learners=[class_prior,prototype_pixels]",
            "protocol.per_class=[5]", "protocol.fractions=[]", "seeds=[0,1]", "report.reference=class_prior",
        ],
    )  # fmt: skip
    summary = compare(cfg)
    prior = summary["results"]
    # balanced support -> uniform probabilities: chance on every metric that corrects for imbalance
    assert prior["bal_acc"]["class_prior"]["per_class=5"]["mean"] == pytest.approx(0.5)
    assert prior["auroc"]["class_prior"]["per_class=5"]["mean"] == pytest.approx(0.5)
    assert prior["acc"]["class_prior"]["per_class=5"]["mean"] == pytest.approx(42 / 156)  # all "malignant"
    saved = json.loads((out / "summary.json").read_text())
    assert saved["learners"] == ["class_prior", "prototype_pixels"]
    assert saved["results"]["bal_acc"]["prototype_pixels"]["per_class=5"]["vs_reference"]["n"] == 2


def test_unknown_learner_names_the_file(compose_root, tmp_path: Path):
    with pytest.raises(KeyError, match="unknown learner 'nope'.*learner/nope.yaml"):
        compare(compose_root("config", tmp_path, ["learners=[nope]"]))

"""ssl.patience: SSL stops once its monitor has not improved for that many checks."""

import csv
import functools
import json

import pytest
import torch

from medfew.ssl import METHODS, pretrain
from medfew.ssl.monitor import KnnMonitor

TRAINER = dict(accelerator="cpu", enable_progress_bar=False, log_every_n_steps=1)


class ScriptedMonitor(KnnMonitor):
    """A KnnMonitor whose checks read ``script`` (before training, then one value per epoch) instead of a backbone."""

    def __init__(self, monitor, csv_path, script, patience):
        super().__init__(monitor, csv_path, patience=patience)
        self.script = list(script)

    def measure(self, trainer, module, epoch):
        return {"knn_acc": self.script[epoch + 1]}


def test_a_check_counts_only_a_new_best_as_progress(pbc32, tmp_path):
    monitor = KnnMonitor(pbc32, tmp_path / "knn.csv", patience=2)
    steps = {}
    for step, value in enumerate([0.50, 0.60, 0.60, 0.65, 0.64, 0.61]):
        steps[step] = monitor.check({"knn_acc": value, "embedding_std": 0.03}, step)
    assert [steps[s] for s in range(6)] == [False, False, False, False, False, True]
    assert (monitor.best, monitor.best_step, monitor.stale) == (0.65, 3, 2)
    spread = KnnMonitor(pbc32.unlabeled(), tmp_path / "spread.csv", patience=1)
    assert not spread.check({"embedding_std": 0.004}, 0) and spread.check({"embedding_std": 0.003}, 1)


@pytest.mark.parametrize("patience, steps, best", [(2, 16, (0.7, 8)), (3, 32, (0.71, 20)), (None, 40, (0.71, 20))])
def test_training_stops_at_the_epoch_patience_runs_out(patience, steps, best, pbc32, tmp_path, tiny_heads, tiny_backbone):
    """32 images / batch 8 = 4 steps per epoch, 10 epochs; the script peaks at 0.7 after epoch 1 (step 8), stalls for
    two epochs, peaks again at 0.71 after epoch 4 (step 20), then falls: patience 2 stops after epoch 3 (step 16),
    patience 3 after epoch 7 (step 32), no patience runs the whole budget (step 40)."""
    script = [0.5, 0.6, 0.7, 0.69, 0.7, 0.71, 0.6, 0.6, 0.6, 0.6, 0.6]
    scripted = ScriptedMonitor(pbc32, tmp_path / "knn.csv", script, patience)
    method = functools.partial(METHODS["simclr"], **tiny_heads["simclr"])
    trainer = TRAINER | {"callbacks": [scripted]}
    pretrain(pbc32, tmp_path / "run", 0, method=method, backbone=tiny_backbone, epochs=10, steps=None, batch_size=8, trainer=trainer)
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == steps and (scripted.best, scripted.best_step) == best


def test_patience_without_a_monitor_watches_the_spread_and_joins_the_cache_key(pbc32, tmp_path, tiny_heads, tiny_backbone):
    method = functools.partial(METHODS["simclr"], **tiny_heads["simclr"])
    options = dict(method=method, backbone=tiny_backbone, epochs=2, steps=None, batch_size=8, trainer=TRAINER, cache=tmp_path)
    plain = pretrain(pbc32, tmp_path / "a", 0, **options)
    patient = pretrain(pbc32, tmp_path / "b", 0, patience=5, **options)
    assert plain.parent != patient.parent  # the monitor can end training, so it is part of what the cache keys
    recorded = json.loads((patient.parent / "pretrain.json").read_text())["patience"]
    assert recorded["checks"] == 5 and recorded["labelled"] is False
    with (patient.parent / "knn.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [-1, 0, 1] and all(r["knn_acc"] == "" and float(r["embedding_std"]) > 0 for r in rows)
    with pytest.raises(ValueError, match="ssl.patience must be a number of monitor checks >= 1"):
        pretrain(pbc32, tmp_path / "c", 0, patience=0, **options)


def test_each_tenth_of_the_budget_logs_a_progress_line(pbc32, tmp_path, tiny_heads, tiny_backbone, caplog):
    """32 images / batch 8 = 4 steps per epoch, 5 epochs: each epoch end enters two new tenths of the 20 steps."""
    method = functools.partial(METHODS["simclr"], **tiny_heads["simclr"])
    with caplog.at_level("INFO", logger="medfew.ssl.monitor"):
        pretrain(pbc32, tmp_path, 0, method=method, backbone=tiny_backbone, epochs=5, steps=None, batch_size=8, trainer=TRAINER, monitor=pbc32)
    lines = [r.getMessage() for r in caplog.records if r.name == "medfew.ssl.monitor"]
    assert [line.split(":")[0] for line in lines] == [f"SSL step {step}/20" for step in (4, 8, 12, 16, 20)]
    assert all("knn_acc" in line and "ETA" in line for line in lines)

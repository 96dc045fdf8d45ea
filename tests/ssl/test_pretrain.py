import csv
import dataclasses
import functools
import json
import logging
import math
import re

import pytest
import pytorch_lightning as pl
import torch

from medfew.models import create_backbone, load_backbone
from medfew.ssl import METHODS, MoCo, pretrain
from medfew.ssl.pretrain import budget_steps, method_settings

TRAINER = dict(accelerator="cpu", enable_progress_bar=False, log_every_n_steps=1)


def run(data, workdir, name, heads, backbone, **kwargs):
    method = functools.partial(METHODS[name], **heads[name])
    options = dict(steps=8, batch_size=8, trainer=TRAINER) | kwargs  # 2 epochs of 32 / 8
    return pretrain(data, workdir, 0, method=method, backbone=backbone, **options)


def checkpoint_encoder(workdir, name, backbone) -> torch.nn.Module:
    """The trained encoder rebuilt from the Lightning checkpoint (loaded weights-only)."""
    state = torch.load(workdir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    prefix = "method.teacher_backbone." if name == "dino" else "method.backbone."
    encoder = backbone()
    encoder.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
    return encoder.eval()


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_pretrains_and_its_export_reloads_identically(name, pbc32, tmp_path, tiny_heads, tiny_backbone):
    export = run(pbc32.unlabeled(), tmp_path, name, tiny_heads, tiny_backbone, monitor=pbc32)
    with (tmp_path / "logs" / "version_0" / "metrics.csv").open() as f:
        losses = [float(r["train/loss"]) for r in csv.DictReader(f) if r.get("train/loss")]
    assert len(losses) == 2 * 4 and all(math.isfinite(x) for x in losses)
    with (tmp_path / "knn.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(int(r["epoch"]), int(r["step"])) for r in rows] == [(-1, 0), (0, 4), (1, 8)]
    assert all(0 < float(r["embedding_std"]) < 1 for r in rows)
    with (tmp_path / "logs" / "version_0" / "metrics.csv").open() as f:
        logged = [r for r in csv.DictReader(f) if r.get("monitor/knn_acc")]
    assert [float(r["monitor/embedding_std"]) for r in logged] == pytest.approx([float(r["embedding_std"]) for r in rows[1:]])
    trained, reloaded = checkpoint_encoder(tmp_path, name, tiny_backbone), load_backbone(export).eval()
    initial = tiny_backbone().eval()  # pretrain seeds the same initialisation
    x = pbc32.images[:4].float() / 255
    with torch.no_grad():
        assert torch.equal(reloaded(x), trained(x))
        assert not torch.allclose(reloaded(x), initial(x))
    assert reloaded.spec == tiny_backbone().spec | {"mean": [0.5], "std": [0.5]}


def test_a_finished_workdir_returns_its_export_without_training(pbc32, tmp_path, tiny_heads, tiny_backbone):
    export = run(pbc32, tmp_path, "simclr", tiny_heads, tiny_backbone, steps=4)
    stamp = export.stat().st_mtime_ns
    assert run(pbc32, tmp_path, "simclr", tiny_heads, tiny_backbone, steps=4) == export
    assert export.stat().st_mtime_ns == stamp and not (tmp_path / "logs" / "version_1").exists()
    with pytest.raises(ValueError, match=re.escape("other settings (budget: {'steps': 4} there, {'steps': 12} now)")):
        run(pbc32, tmp_path, "simclr", tiny_heads, tiny_backbone, steps=12)


def test_a_cache_trains_once_per_pool_seed_and_settings(pbc32, tmp_path, tiny_heads, tiny_backbone):
    cache = tmp_path / "cache"
    method = functools.partial(METHODS["simclr"], **tiny_heads["simclr"])
    quick = {"method": method, "backbone": tiny_backbone, "epochs": 1, "batch_size": 8}

    def cached(data=pbc32, seed=0, **changes):
        options = quick | {"trainer": TRAINER | {"limit_train_batches": 1}} | changes
        return pretrain(data, tmp_path / "unused", seed, cache=cache, **options)

    export = cached()
    stamp = export.stat().st_mtime_ns
    shown = TRAINER | {"limit_train_batches": 1, "enable_progress_bar": True, "log_every_n_steps": 50}
    assert cached() == cached(trainer=shown) == export  # display options do not change the weights
    assert cached(data=dataclasses.replace(pbc32, name="another-name")) == export  # the key is the pixels, not names
    assert export.stat().st_mtime_ns == stamp and [p.name for p in (export.parent / "logs").iterdir()] == ["version_0"]
    assert export.parent.parent == cache / "ssl" and not (tmp_path / "unused").exists()
    flipped = pbc32.images.clone()
    flipped[0, 0, 0, 0] ^= 1
    others = [
        cached(seed=1),
        cached(data=dataclasses.replace(pbc32, images=flipped)),
        cached(data=dataclasses.replace(pbc32, images=pbc32.images.flip(0))),  # same images, other order
        cached(method=functools.partial(method, temperature=0.5)),
        cached(augment={"rotation": 0.0}),
        cached(trainer=TRAINER | {"limit_train_batches": 2}),
        cached(steps=1, epochs=None),  # the same step as epochs=1 here, but another budget rule
        cached(warmup_steps=1),
        cached(optimizer="adamw"),
        cached(method=functools.partial(METHODS["moco"], **tiny_heads["moco"])),
        cached(method=functools.partial(METHODS["moco"], **tiny_heads["moco"], momentum=0.99)),
    ]
    assert len({export, *others}) == 12 and len(list((cache / "ssl").iterdir())) == 12
    export.unlink()  # as if killed after its last checkpoint: the same call finds the folder and resumes
    assert cached() == export and [p.name for p in (export.parent / "logs").iterdir()] == ["version_0", "version_1"]


def test_a_pool_smaller_than_a_batch_trains_on_batches_of_the_pool(pbc32, tmp_path, tiny_heads, tiny_backbone, caplog):
    with caplog.at_level("WARNING", logger="medfew.ssl.pretrain"):
        export = run(pbc32, tmp_path, "simclr", tiny_heads, tiny_backbone, batch_size=64)
    assert "32 images in the pool, fewer than batch_size = 64: batches of 32" in caplog.text
    assert json.loads((export.parent / "pretrain.json").read_text())["batch_size"] == 32


def test_bad_settings_name_the_culprit(pbc32, tmp_path, tiny_heads, tiny_backbone):
    with pytest.raises(ValueError, match="1 image\\(s\\) in the pool; SSL compares views of 2 images or more"):
        run(pbc32.subset(torch.arange(1)), tmp_path, "simclr", tiny_heads, tiny_backbone)
    with pytest.raises(ValueError, match="unknown optimizer 'adam'; valid ones are sgd, lars, adamw"):
        run(pbc32, tmp_path / "b", "simclr", tiny_heads, tiny_backbone, optimizer="adam")


@pytest.mark.parametrize("zero_init_last", [False, True])
def test_any_timm_backbone_works_and_starts_its_residual_branches_open(zero_init_last, pbc32, tmp_path, tiny_heads):
    backbone = functools.partial(create_backbone, "resnet18", 3, 32)
    export = run(pbc32, tmp_path, "byol", tiny_heads, backbone, steps=2, batch_size=16, zero_init_last=zero_init_last)
    trained = load_backbone(export)
    assert trained.num_features == 512
    last_norm = trained.net.layer1[0].bn2.weight  # two SGD steps move it little from where it started
    assert last_norm.abs().mean().item() == pytest.approx(0.0 if zero_init_last else 1.0, abs=0.05)
    assert json.loads((tmp_path / "pretrain.json").read_text())["zero_init_last"] is zero_init_last


def test_the_recorded_method_holds_every_argument_defaults_included():
    """A changed class default must change the cache key: the key records resolved arguments."""
    by_name = method_settings("moco")
    assert by_name == method_settings(functools.partial(MoCo)) == method_settings(MoCo)
    assert by_name["_target_"] == "medfew.ssl.moco.MoCo"
    assert by_name["momentum"] == 0.9 and by_name["max_queue_fraction"] == 0.25 and "backbone" not in by_name
    assert method_settings(functools.partial(functools.partial(MoCo, queue_size=8), momentum=0.9)) == by_name | {
        "queue_size": 8, "momentum": 0.9}


def test_the_budget_is_steps_epochs_or_epochs_capped_at_steps(pbc32, tmp_path, tiny_heads, tiny_backbone):
    run(pbc32, tmp_path / "a", "simclr", tiny_heads, tiny_backbone, steps=3)
    assert json.loads((tmp_path / "a" / "pretrain.json").read_text())["budget"] == {"steps": 3}
    assert torch.load(tmp_path / "a" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 3
    run(pbc32, tmp_path / "b", "simclr", tiny_heads, tiny_backbone, steps=None, epochs=2)  # 2 x 32 // 8
    assert torch.load(tmp_path / "b" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 8
    run(pbc32, tmp_path / "e", "simclr", tiny_heads, tiny_backbone, steps=5, epochs=3)  # 3 x 4 steps, capped at 5
    assert json.loads((tmp_path / "e" / "pretrain.json").read_text())["budget"] == {"epochs": 3, "max_steps": 5}
    assert torch.load(tmp_path / "e" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 5
    assert budget_steps({"epochs": 3, "max_steps": 5}, 32, 8) == 5 and budget_steps({"epochs": 3, "max_steps": 50}, 32, 8) == 12
    assert budget_steps({"epochs": 400, "max_steps": 5000}, 112, 128) == 400  # a pool smaller than a batch: one batch an epoch
    with pytest.raises(ValueError, match="got neither"):
        run(pbc32, tmp_path / "c", "simclr", tiny_heads, tiny_backbone, steps=None)
    with pytest.raises(ValueError, match="warmup_steps = 5 does not fit a budget of 4 steps"):
        run(pbc32, tmp_path / "d", "simclr", tiny_heads, tiny_backbone, steps=4, warmup_steps=5)


class QueueSize(pl.Callback):
    def on_train_start(self, trainer, module) -> None:
        self.size = module.method.queue_size


def test_moco_queue_is_capped_below_the_pool(pbc32, tmp_path, tiny_heads, tiny_backbone):
    method = MoCo(tiny_backbone(), **tiny_heads["moco"] | {"queue_size": 4096})
    method.fit_pool(100)
    assert method.queue_size == 25 and method.queue.size == (25, 16)  # a quarter of the pool
    method.fit_pool(1000)
    assert method.queue_size == 25  # capping never grows a queue
    small = MoCo(tiny_backbone(), **tiny_heads["moco"] | {"queue_size": 16})
    small.fit_pool(100)
    assert small.queue_size == 16
    seen = QueueSize()
    run(pbc32, tmp_path, "moco", tiny_heads, tiny_backbone, steps=2, trainer=TRAINER | {"callbacks": [seen]})
    assert tiny_heads["moco"]["queue_size"] == 32 and seen.size == 8  # 32 images in the pool


def test_a_long_stage_says_when_it_starts_and_ends_and_a_cached_one_that_it_was_reused(pbc32, tmp_path, tiny_heads, tiny_backbone, caplog):
    method = functools.partial(METHODS["simclr"], **tiny_heads["simclr"])
    options = dict(method=method, backbone=tiny_backbone, steps=2, batch_size=8, trainer={"accelerator": "cpu", "enable_progress_bar": False})
    with caplog.at_level(logging.INFO, logger="medfew.ssl.pretrain"):
        pretrain(pbc32, tmp_path, 3, **options)
        pretrain(pbc32, tmp_path, 3, **options)
    lines = [record.getMessage() for record in caplog.records if record.name == "medfew.ssl.pretrain"]
    assert lines[0] == f"SSL pretraining (seed 3, 32 images, 2 steps of 8) started in {tmp_path}"
    assert lines[1].startswith("SSL pretraining (seed 3) done: 2 steps in ")
    assert lines[2] == f"SSL pretraining (seed 3, 32 images): reused {tmp_path}" and len(lines) == 3

import csv
import dataclasses
import functools
import math

import pytest
import torch

from medfew.models import create_backbone, load_backbone
from medfew.ssl import METHODS, pretrain

TRAINER = dict(accelerator="cpu", enable_progress_bar=False, log_every_n_steps=1)


def run(data, workdir, name, heads, backbone, **kwargs):
    method = functools.partial(METHODS[name], **heads[name])
    options = dict(epochs=2, batch_size=8, trainer=TRAINER) | kwargs
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
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == [-1, 0, 1]
    trained, reloaded = checkpoint_encoder(tmp_path, name, tiny_backbone), load_backbone(export).eval()
    initial = tiny_backbone().eval()  # pretrain seeds the same initialisation
    x = pbc32.images[:4].float() / 255
    with torch.no_grad():
        assert torch.equal(reloaded(x), trained(x))
        assert not torch.allclose(reloaded(x), initial(x))
    assert reloaded.spec == tiny_backbone().spec | {"mean": [0.5], "std": [0.5]}


def test_a_finished_workdir_returns_its_export_without_training(pbc32, tmp_path, tiny_heads, tiny_backbone):
    export = run(pbc32, tmp_path, "simclr", tiny_heads, tiny_backbone, epochs=1)
    stamp = export.stat().st_mtime_ns
    assert run(pbc32, tmp_path, "simclr", tiny_heads, tiny_backbone, epochs=1) == export
    assert export.stat().st_mtime_ns == stamp and not (tmp_path / "logs" / "version_1").exists()
    with pytest.raises(ValueError, match="other settings.*epochs: 1 there, 3 now"):
        run(pbc32, tmp_path, "simclr", tiny_heads, tiny_backbone, epochs=3)


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
    ]
    assert len({export, *others}) == 7 and len(list((cache / "ssl").iterdir())) == 7
    export.unlink()  # as if killed after its last checkpoint: the same call finds the folder and resumes
    assert cached() == export and [p.name for p in (export.parent / "logs").iterdir()] == ["version_0", "version_1"]


def test_bad_settings_name_the_culprit(pbc32, tmp_path, tiny_heads, tiny_backbone):
    with pytest.raises(ValueError, match="32 images in the pool, fewer than batch_size = 64"):
        run(pbc32, tmp_path, "simclr", tiny_heads, tiny_backbone, batch_size=64)
    with pytest.raises(ValueError, match="unknown optimizer 'adam'; valid ones are sgd, lars, adamw"):
        run(pbc32, tmp_path / "b", "simclr", tiny_heads, tiny_backbone, optimizer="adam")


def test_any_timm_backbone_works(pbc32, tmp_path, tiny_heads):
    backbone = functools.partial(create_backbone, "resnet18", 3, 32)
    export = run(pbc32, tmp_path, "byol", tiny_heads, backbone, epochs=1, batch_size=16)
    assert load_backbone(export).num_features == 512

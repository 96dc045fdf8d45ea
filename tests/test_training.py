"""Precision: ``auto`` per hardware in Lightning trainers and in the plain fine-tuning loop."""

from functools import partial

import pytest
import torch

from medfew import training
from medfew.learners.finetune import FineTune
from medfew.models import create_backbone


@pytest.mark.parametrize(("bf16", "cpu", "cuda"), [(True, "bf16-mixed", "bf16-mixed"), (False, "32-true", "16-mixed")])
def test_auto_precision_follows_the_hardware(monkeypatch, tmp_path, bf16: bool, cpu: str, cuda: str) -> None:
    monkeypatch.setattr(training, "bf16_supported", lambda device_type: bf16)
    assert training.resolve_precision("auto", "cpu") == cpu
    assert training.resolve_precision("auto", "cuda") == cuda
    assert training.resolve_precision("32-true", "cuda") == "32-true"  # explicit values pass through
    assert training.build_trainer(tmp_path, 0, accelerator="cpu").precision == cpu
    assert training.build_trainer(tmp_path, 0, accelerator="cpu", precision="32-true").precision == "32-true"
    assert training.autocast_dtype("auto", "cpu") == (torch.bfloat16 if bf16 else None)


@pytest.mark.parametrize(("precision", "dtype"), [("bf16-mixed", torch.bfloat16), ("16-mixed", torch.float16)])
def test_finetune_trains_under_autocast(precision: str, dtype: torch.dtype) -> None:
    """Low-precision finite convolutions while training (a non-finite loss would raise), float32 weights and predictions."""
    generator = torch.Generator().manual_seed(0)
    images, labels = torch.rand(12, 1, 16, 16, generator=generator), torch.arange(3).repeat(4)
    torch.manual_seed(0)
    learner = FineTune(partial(create_backbone, "conv4", 1, 16, model_kwargs={"hidden": 8}), steps=3, precision=precision)
    seen = []
    conv = learner.backbone.net.features[0][0]
    # adapt trains a deep copy of the backbone, hook included
    conv.register_forward_hook(lambda module, args, out: seen.append((out.dtype, torch.isfinite(out).all().item())))
    state = learner.adapt(images, labels)
    assert seen == [(dtype, True)] * 3
    probs = learner.predict(state, images)
    assert seen[3:] == [(torch.float32, True)] and probs.dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in state.parameters())
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(12))


def test_finetune_refuses_an_unknown_precision() -> None:
    with pytest.raises(ValueError, match="precision 'bf16-true' is not one of auto, 32-true, bf16-mixed, 16-mixed"):
        FineTune(partial(create_backbone, "conv4", 1, 16), precision="bf16-true")

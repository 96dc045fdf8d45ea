"""Schedules over optimiser steps: exact values on hand-made budgets, and the lr a real run applies."""

import functools

import pytest
import pytorch_lightning as pl
import torch

from medfew.ssl import DINO, BYOL, SimSiam, pretrain
from medfew.ssl.schedules import fraction_of, linear_ramp, momentum_schedule, warmup_cosine


def test_warmup_then_cosine_over_steps():
    assert [warmup_cosine(s, 10, warmup=2) for s in (0, 1, 2, 6, 10)] == pytest.approx([0.5, 1.0, 1.0, 0.5, 0.0])
    assert warmup_cosine(6, 10, warmup=2, end=0.1) == pytest.approx(0.55)  # 0.1 + 0.9 * (1 + cos(pi / 2)) / 2
    assert warmup_cosine(0, 4) == 1.0 and warmup_cosine(12, 10) == 0.0  # no warmup; past the budget: the end
    with pytest.raises(ValueError, match="warmup must be between 0 and total = 10 steps, got 11"):
        warmup_cosine(0, 10, warmup=11)


def test_momentum_rises_from_base_to_one_on_a_half_cosine():
    assert [momentum_schedule(s, 100, 0.99) for s in (0, 50, 100)] == pytest.approx([0.99, 0.995, 1.0])
    assert momentum_schedule(25, 100, 0.9) == pytest.approx(1 - 0.1 * (1 + 2**-0.5) / 2)


def test_linear_ramp_and_phases_as_fractions_of_the_budget():
    assert [linear_ramp(s, 10, 0.04, 0.07) for s in (0, 5, 10, 20)] == pytest.approx([0.04, 0.055, 0.07, 0.07])
    assert linear_ramp(0, 0, 0.04, 0.07) == 0.07
    assert fraction_of(300, 0.1) == 30 and fraction_of(5, 0.25) == 1 and fraction_of(7, 0.0) == 0


def test_teacher_follows_the_momentum_of_its_step(tiny_heads, tiny_backbone):
    method = BYOL(tiny_backbone(), **tiny_heads["byol"], momentum=0.99)
    before = {k: v.clone() for k, v in method.teacher_head.named_parameters()}
    with torch.no_grad():
        for p in method.head.parameters():
            p.add_(1.0)
    method.update_teacher(step=50, max_steps=100)  # momentum 0.995: the teacher moves 0.005 of the way
    for key, value in method.teacher_head.named_parameters():
        torch.testing.assert_close(value, before[key] + 0.005, rtol=0, atol=1e-6)


def test_dino_teacher_temperature_and_last_layer_freeze_follow_steps(tiny_heads, tiny_backbone):
    method = DINO(
        tiny_backbone(), **tiny_heads["dino"], teacher_temp=0.07, warmup_teacher_temp=0.04,
        warmup_teacher_temp_fraction=0.3, freeze_last_layer_fraction=0.02,
    )
    assert [method.teacher_temperature(s, 100) for s in (0, 15, 30, 99)] == pytest.approx([0.04, 0.055, 0.07, 0.07])
    for step, frozen in ((0, True), (1, True), (2, False)):
        for p in method.head.last_layer.parameters():
            p.grad = torch.ones_like(p)
        method.on_after_backward(step, 100)
        assert all((p.grad is None) == frozen for p in method.head.last_layer.parameters()), step


class LearningRates(pl.Callback):
    """The lr of every parameter group at the start of each step."""

    def __init__(self) -> None:
        self.seen: list[list[float]] = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self.seen.append([group["lr"] for group in trainer.optimizers[0].param_groups])


def test_a_run_applies_warmup_and_cosine_per_step_and_keeps_simsiams_predictor_lr(pbc32, tmp_path, tiny_heads, tiny_backbone):
    rates = LearningRates()
    pretrain(
        pbc32, tmp_path, 0, method=functools.partial(SimSiam, **tiny_heads["simsiam"]), backbone=tiny_backbone,
        steps=6, batch_size=8, optimizer="sgd", lr=0.256, warmup_steps=2,  # base lr 0.256 * 8 / 256 = 0.008
        trainer=dict(accelerator="cpu", enable_progress_bar=False, callbacks=[rates]),
    )
    scheduled = [0.004, 0.008, 0.008, 0.008 * (1 + 2**-0.5) / 2, 0.004, 0.008 * (1 - 2**-0.5) / 2]
    assert len(rates.seen) == 6  # 6 steps over 1.5 epochs of 4 steps: the budget is steps, not epochs
    groups = list(zip(*rates.seen))
    constant = [g for g in groups if g == pytest.approx([0.008] * 6)]
    decayed = [g for g in groups if g == pytest.approx(scheduled)]
    assert len(constant) == 2 and len(decayed) == 2, groups  # predictor, the rest: (decayed, not decayed) each

"""Schedules over optimiser steps: learning-rate warmup + cosine, teacher momentum, linear ramps.

Every schedule is a pure function of ``(step, total)``: a budget is a number of optimiser
steps, so the same schedule shape holds for a 300-image pool and for ImageNet.
"""

from __future__ import annotations

import math


def warmup_cosine(step: int, total: int, warmup: int = 0, end: float = 0.0) -> float:
    """Learning-rate factor: linear warmup to 1, then cosine decay to ``end`` at ``total``.

    Step ``s < warmup`` gets ``(s + 1) / warmup`` (the first step already moves); after the
    warmup, ``end + (1 - end) * (1 + cos(pi * t)) / 2`` with ``t = (s - warmup) / (total - warmup)``
    (Loshchilov & Hutter, "SGDR", ICLR 2017, https://arxiv.org/abs/1608.03983).
    """
    check_step(step, total)
    if not 0 <= warmup <= total:
        raise ValueError(f"warmup must be between 0 and total = {total} steps, got {warmup}")
    if step < warmup:
        return (step + 1) / warmup
    t = min((step - warmup) / max(total - warmup, 1), 1.0)
    return end + (1.0 - end) * 0.5 * (1.0 + math.cos(math.pi * t))


def momentum_schedule(step: int, total: int, base: float) -> float:
    """Teacher EMA momentum rising from ``base`` at step 0 to 1 at ``total`` on a half cosine
    (BYOL, Grill et al. 2020, https://arxiv.org/abs/2006.07733: ``1 - (1 - base)(cos(pi s / total) + 1) / 2``)."""
    check_step(step, total)
    if not 0.0 <= base <= 1.0:
        raise ValueError(f"momentum must be in [0, 1], got {base}")
    return 1.0 - (1.0 - base) * 0.5 * (1.0 + math.cos(math.pi * min(step / max(total, 1), 1.0)))


def linear_ramp(step: int, steps: int, start: float, end: float) -> float:
    """``start`` at step 0, linearly to ``end`` at ``steps``, then ``end`` (``steps`` = 0: ``end`` throughout)."""
    if step < 0 or steps < 0:
        raise ValueError(f"step and steps must be >= 0, got step {step}, steps {steps}")
    if step >= steps:
        return end
    return start + (end - start) * step / steps


def fraction_of(total: int, fraction: float) -> int:
    """``round(fraction * total)`` steps: the length of a phase given as a fraction of the budget."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"a phase is a fraction of the budget in [0, 1], got {fraction}")
    return round(fraction * total)


def check_step(step: int, total: int) -> None:
    if total < 1:
        raise ValueError(f"a budget needs at least 1 step, got total = {total}")
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")

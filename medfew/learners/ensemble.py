"""Ensemble: the mean of several learners' class probabilities.

Averaging the probabilities of differently built models gives better calibrated, more accurate
predictions than any one of them (Lakshminarayanan et al., "Simple and Scalable Predictive
Uncertainty Estimation using Deep Ensembles", NeurIPS 2017, https://arxiv.org/abs/1612.01474).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor, nn

from medfew.learners.base import Learner, PrepareContext


class Ensemble(Learner):
    """Each member prepares and adapts on its own; ``predict`` averages their probabilities.

    Args:
        members: learners by name (their checkpoints go to ``<workdir>/<name>``).
    """

    def __init__(self, members: Mapping[str, Learner]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member learner")
        self.members = nn.ModuleDict(dict(members))

    def prepare(self, context: PrepareContext) -> None:
        for name, member in self.members.items():
            member.prepare(replace(context, workdir=context.workdir / name))

    def adapt(self, support: Tensor, support_labels: Tensor, val: tuple[Tensor, Tensor] | None = None) -> dict[str, Any]:
        return {name: member.adapt(support, support_labels, val) for name, member in self.members.items()}

    def predict(self, state: dict[str, Any], query: Tensor) -> Tensor:
        return torch.stack([member.predict(state[name], query) for name, member in self.members.items()]).mean(0)

"""Model-Agnostic Meta-Learning (second order, or first order = FOMAML) through learn2learn.

Finn, Abbeel & Levine, "Model-Agnostic Meta-Learning for Fast Adaptation of Deep
Networks", ICML 2017, https://arxiv.org/abs/1703.03400.
"""

from __future__ import annotations

import learn2learn as l2l
from torch import nn

from medfew.fewshot.gbml import GradientMetaLearner


class MAML(GradientMetaLearner):
    """The inner loop adapts the whole network (backbone + head); ``first_order=True`` is FOMAML."""

    def split(
        self, body: nn.Module, head: nn.Linear, inner_lr: float, first_order: bool
    ) -> tuple[nn.Module, l2l.algorithms.MAML]:
        network = nn.Sequential(body, head)
        return nn.Identity(), l2l.algorithms.MAML(network, lr=inner_lr, first_order=first_order, allow_unused=True)

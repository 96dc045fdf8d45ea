"""Meta-SGD: MAML with a meta-learned step size per parameter entry, through learn2learn.

Li, Zhou, Chen & Li, "Meta-SGD: Learning to Learn Quickly for Few-Shot Learning", 2017,
https://arxiv.org/abs/1707.09835.
"""

from __future__ import annotations

import learn2learn as l2l
from torch import nn

from medfew.fewshot.gbml import GradientMetaLearner


class MetaSGD(GradientMetaLearner):
    """The inner loop adapts the whole network with learned step sizes (initialised to ``inner_lr``)."""

    def split(
        self, body: nn.Module, head: nn.Linear, inner_lr: float, first_order: bool
    ) -> tuple[nn.Module, l2l.algorithms.MetaSGD]:
        return nn.Identity(), l2l.algorithms.MetaSGD(nn.Sequential(body, head), lr=inner_lr, first_order=first_order)

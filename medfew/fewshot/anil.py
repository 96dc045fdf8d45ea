"""Almost No Inner Loop: MAML whose inner loop adapts only the head.

Raghu, Raghu, Bengio & Vinyals, "Rapid Learning or Feature Reuse? Towards Understanding
the Effectiveness of MAML", ICLR 2020, https://arxiv.org/abs/1909.09157.
"""

from __future__ import annotations

import learn2learn as l2l
from torch import nn

from medfew.fewshot.gbml import GradientMetaLearner


class ANIL(GradientMetaLearner):
    """The backbone is fixed in the inner loop (features computed once per episode) and
    learned only by the outer loop; the inner loop adapts the linear head."""

    def split(
        self, body: nn.Module, head: nn.Linear, inner_lr: float, first_order: bool
    ) -> tuple[nn.Module, l2l.algorithms.MAML]:
        return body, l2l.algorithms.MAML(head, lr=inner_lr, first_order=first_order, allow_unused=True)

"""Matching Networks (without full context embeddings).

Vinyals, Blundell, Lillicrap, Kavukcuoglu & Wierstra, "Matching Networks for One Shot
Learning", NeurIPS 2016, https://arxiv.org/abs/1606.04080. The paper's optional full
context embeddings (LSTMs over the support set) are left out, as in most re-implementations.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from medfew.fewshot.episodic import EpisodicLearner
from medfew.fewshot.meta_training import MetaTraining
from medfew.learners.backbone import BackboneArg, BaseTrainer, Pretrain
from medfew.learners.base import support_ways


class MatchingNet(EpisodicLearner):
    """p(y = k | x) = sum_i a(x, x_i) [y_i = k], a = softmax_i(scale * cos(f(x), f(x_i))).

    Args:
        backbone: a Backbone, or a factory building one (Conv-4 as in the paper, timm, an SSL export).
        scale: multiplies the cosine similarities before the softmax (1 in the paper; larger
            values sharpen the attention).
        meta_train_steps: episodic meta-iterations on base classes; 0 means none.
        meta_training: episodic training settings.
        pretrain, base_training: optional earlier stages (``BackboneLearner``).
    """

    def __init__(
        self,
        backbone: BackboneArg,
        scale: float = 10.0,
        meta_train_steps: int = 0,
        meta_training: MetaTraining | None = None,
        pretrain: Pretrain | None = None,
        base_training: BaseTrainer | None = None,
    ) -> None:
        super().__init__(backbone, pretrain, base_training, meta_train_steps, meta_training)
        self.scale = scale

    def adapt(self, support: Tensor, support_labels: Tensor, val: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        """(n_support, D) L2-normalised support embeddings and (n_support, n_way) one-hot labels."""
        features = F.normalize(self.features(support), dim=-1)
        return features, F.one_hot(support_labels, support_ways(support_labels)).float()

    def logits(self, state: tuple[Tensor, Tensor], query: Tensor) -> Tensor:
        """(n_query, n_way) log p(y | x): the log of the attention-weighted support labels."""
        support, one_hot = state
        attention = torch.softmax(self.scale * F.normalize(self.features(query), dim=-1) @ support.T, dim=-1)
        return torch.log((attention @ one_hot).clamp_min(1e-12))

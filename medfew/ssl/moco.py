"""MoCo v2: Chen et al., "Improved Baselines with Momentum Contrastive Learning", 2020,
https://arxiv.org/abs/2003.04297 (MoCo: He et al., CVPR 2020, https://arxiv.org/abs/1911.05722)."""

import torch
import torch.nn.functional as F
from lightly.models.modules import MoCoProjectionHead
from lightly.models.modules.memory_bank import MemoryBankModule
from torch import Tensor

from medfew.models import Backbone
from medfew.ssl.base import MOMENTUM_SGD, MomentumMethod


class MoCo(MomentumMethod):
    """Queries from the student, keys from the momentum teacher, negatives from a queue.

    InfoNCE at ``temperature``: each query's positive is the key of its other view; its
    negatives are the other keys of the batch (as in MoCo v3, so a small or empty queue still
    has negatives) and the queue of past keys. Keys of the batch's own images, queued in an
    earlier epoch, are stale copies of the positive: a queue of ``q`` keys in a pool of ``N``
    images holds one for about ``q^2 / 2N^2`` of the queries (every one once ``q >= N``), so
    ``fit_pool`` caps the queue at ``max_queue_fraction`` of the pool (1/4: about 3 %; MoCo's
    ImageNet queue is 5 % of its pool). Both views serve as query and as key (symmetrised, as in
    lightly's CIFAR-10 benchmark); the queue takes one key per image and step.
    (B, C, H, W) x 2 -> scalar loss.
    """

    recipe = MOMENTUM_SGD

    def __init__(
        self,
        backbone: Backbone,
        hidden_dim: int = 512,
        output_dim: int = 128,
        temperature: float = 0.2,
        queue_size: int = 4096,
        max_queue_fraction: float = 0.25,
        momentum: float = 0.9,
    ) -> None:
        super().__init__(backbone, lambda: MoCoProjectionHead(backbone.num_features, hidden_dim, output_dim), momentum)
        if not 0.0 <= max_queue_fraction < 1.0:
            raise ValueError(f"max_queue_fraction must be in [0, 1) of the pool, got {max_queue_fraction}")
        self.temperature = temperature
        self.max_queue_fraction = max_queue_fraction
        self.queue = MemoryBankModule(size=(queue_size, output_dim) if queue_size > 0 else 0)

    @property
    def queue_size(self) -> int:
        return self.queue.size[0]

    def fit_pool(self, n_images: int) -> None:
        """Cap the queue at ``max_queue_fraction`` of a pool of ``n_images``."""
        cap = int(self.max_queue_fraction * n_images)
        if self.queue_size > cap:
            self.queue = MemoryBankModule(size=(cap, self.queue.size[1]) if cap > 0 else 0)

    def forward(self, views: list[Tensor], step: int, max_steps: int) -> Tensor:
        self.update_teacher(step, max_steps)
        q0, q1 = (F.normalize(self.student(view), dim=1) for view in views)
        k0, k1 = (F.normalize(self.teacher(view), dim=1) for view in views)
        _, queued = self.queue(k1, update=True)  # the queue as it was before this batch, (D, q) or None
        return 0.5 * (self.info_nce(q0, k1, queued) + self.info_nce(q1, k0, queued))

    def info_nce(self, query: Tensor, key: Tensor, queued: Tensor | None) -> Tensor:
        """Cross-entropy of picking ``key[i]`` for ``query[i]`` among the batch's keys and the queue."""
        logits = query @ key.T
        if queued is not None:
            logits = torch.cat([logits, query @ queued.to(query.dtype)], dim=1)
        labels = torch.arange(len(query), device=query.device)
        return F.cross_entropy(logits / self.temperature, labels)

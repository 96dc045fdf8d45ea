"""MoCo v2: Chen et al., "Improved Baselines with Momentum Contrastive Learning", 2020,
https://arxiv.org/abs/2003.04297 (MoCo: He et al., CVPR 2020, https://arxiv.org/abs/1911.05722)."""

from lightly.loss import NTXentLoss
from lightly.models.modules import MoCoProjectionHead
from torch import Tensor

from medfew.models import Backbone
from medfew.ssl.base import MomentumMethod, Recipe


class MoCo(MomentumMethod):
    """Queries from the student, keys from the momentum teacher, negatives from a queue.

    The queue (lightly's memory bank inside NT-Xent) holds ``queue_size`` past keys; keep
    it well below the number of images in a small pool. (B, C, H, W) x 2 -> scalar loss.
    """

    recipe = Recipe(optimizer="sgd", lr=0.03, weight_decay=1e-4, warmup_epochs=0)

    def __init__(
        self,
        backbone: Backbone,
        hidden_dim: int = 512,
        output_dim: int = 128,
        temperature: float = 0.2,
        queue_size: int = 1024,
        momentum: float = 0.99,
    ) -> None:
        super().__init__(backbone, lambda: MoCoProjectionHead(backbone.num_features, hidden_dim, output_dim), momentum)
        self.criterion = NTXentLoss(temperature=temperature, memory_bank_size=(queue_size, output_dim))

    def forward(self, views: list[Tensor], step: int, max_steps: int) -> Tensor:
        self.update_teacher(step, max_steps)
        query, key = self.student(views[0]), self.teacher(views[1])
        return self.criterion(query, key)

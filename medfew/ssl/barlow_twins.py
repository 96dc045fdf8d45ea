"""Barlow Twins: Zbontar et al., "Barlow Twins: Self-Supervised Learning via Redundancy
Reduction", ICML 2021, https://arxiv.org/abs/2103.03230."""

from lightly.loss import BarlowTwinsLoss
from lightly.models.modules import BarlowTwinsProjectionHead
from torch import Tensor

from medfew.models import Backbone
from medfew.ssl.base import Recipe, SSLMethod


class BarlowTwins(SSLMethod):
    """Push the cross-correlation of two views' projections towards the identity.

    (B, C, H, W) x 2 -> scalar loss.
    """

    recipe = Recipe(optimizer="lars", lr=0.2, weight_decay=1.5e-6, warmup=0.1)

    def __init__(
        self, backbone: Backbone, hidden_dim: int = 1024, output_dim: int = 1024, lambda_param: float = 5e-3
    ) -> None:
        super().__init__(backbone)
        self.head = BarlowTwinsProjectionHead(backbone.num_features, hidden_dim, output_dim)
        self.criterion = BarlowTwinsLoss(lambda_param=lambda_param, gather_distributed=True)

    def forward(self, views: list[Tensor], step: int, max_steps: int) -> Tensor:
        z0, z1 = (self.head(self.backbone(view)) for view in views)
        return self.criterion(z0, z1)

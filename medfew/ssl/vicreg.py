"""VICReg: Bardes, Ponce & LeCun, "VICReg: Variance-Invariance-Covariance Regularization
for Self-Supervised Learning", ICLR 2022, https://arxiv.org/abs/2105.04906."""

from lightly.loss import VICRegLoss
from lightly.models.modules.heads import VICRegProjectionHead
from torch import Tensor

from medfew.models import Backbone
from medfew.ssl.base import Recipe, SSLMethod


class VICReg(SSLMethod):
    """Invariance between two views' projections, variance kept up, covariance pushed down.

    (B, C, H, W) x 2 -> scalar loss.
    """

    recipe = Recipe(optimizer="sgd", lr=0.3, weight_decay=5e-4, warmup=0.1)

    def __init__(
        self,
        backbone: Backbone,
        hidden_dim: int = 1024,
        output_dim: int = 1024,
        invariance_weight: float = 25.0,
        variance_weight: float = 25.0,
        covariance_weight: float = 1.0,
    ) -> None:
        super().__init__(backbone)
        self.head = VICRegProjectionHead(backbone.num_features, hidden_dim, output_dim)
        self.criterion = VICRegLoss(
            lambda_param=invariance_weight, mu_param=variance_weight, nu_param=covariance_weight,
            gather_distributed=True,
        )

    def forward(self, views: list[Tensor], step: int, max_steps: int) -> Tensor:
        z0, z1 = (self.head(self.backbone(view)) for view in views)
        return self.criterion(z0, z1)

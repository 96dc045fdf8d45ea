"""SimCLR: Chen et al., "A Simple Framework for Contrastive Learning of Visual
Representations", ICML 2020, https://arxiv.org/abs/2002.05709."""

from lightly.loss import NTXentLoss
from lightly.models.modules import SimCLRProjectionHead
from torch import Tensor

from medfew.models import Backbone
from medfew.ssl.base import Recipe, SSLMethod


class SimCLR(SSLMethod):
    """NT-Xent between the projections of two views; (B, C, H, W) x 2 -> scalar loss."""

    recipe = Recipe(optimizer="sgd", lr=1.0, weight_decay=5e-4, warmup=0.1)

    def __init__(
        self, backbone: Backbone, hidden_dim: int = 512, output_dim: int = 128, temperature: float = 0.2
    ) -> None:
        super().__init__(backbone)
        self.head = SimCLRProjectionHead(backbone.num_features, hidden_dim, output_dim)
        self.criterion = NTXentLoss(temperature=temperature, gather_distributed=True)

    def forward(self, views: list[Tensor], step: int, max_steps: int) -> Tensor:
        z0, z1 = (self.head(self.backbone(view)) for view in views)
        return self.criterion(z0, z1)

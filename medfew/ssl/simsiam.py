"""SimSiam: Chen & He, "Exploring Simple Siamese Representation Learning", CVPR 2021,
https://arxiv.org/abs/2011.10566."""

from lightly.loss import NegativeCosineSimilarity
from lightly.models.modules import SimSiamPredictionHead, SimSiamProjectionHead
from torch import Tensor

from medfew.models import Backbone
from medfew.ssl.base import MOMENTUM_SGD, SSLMethod


class SimSiam(SSLMethod):
    """Predict one view's projection from the other's, with a stop-gradient on the target.

    The predictor is a bottleneck MLP (``predictor_dim`` = ``output_dim`` / 4, as the paper's
    2048 -> 512 -> 2048) trained at a constant learning rate (the paper, Sec. 4.2: a decayed
    predictor lr works less well). (B, C, H, W) x 2 -> scalar loss (symmetrised negative cosine
    similarity).
    """

    recipe = MOMENTUM_SGD
    constant_lr = ("predictor",)

    def __init__(
        self, backbone: Backbone, hidden_dim: int = 1024, output_dim: int = 1024, predictor_dim: int = 256
    ) -> None:
        super().__init__(backbone)
        self.projector = SimSiamProjectionHead(backbone.num_features, hidden_dim, output_dim)
        self.predictor = SimSiamPredictionHead(output_dim, predictor_dim, output_dim)
        self.criterion = NegativeCosineSimilarity()

    def forward(self, views: list[Tensor], step: int, max_steps: int) -> Tensor:
        z0, z1 = (self.projector(self.backbone(view)) for view in views)
        p0, p1 = self.predictor(z0), self.predictor(z1)
        return 0.5 * (self.criterion(p0, z1.detach()) + self.criterion(p1, z0.detach()))

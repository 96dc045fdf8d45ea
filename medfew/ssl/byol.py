"""BYOL: Grill et al., "Bootstrap Your Own Latent", NeurIPS 2020, https://arxiv.org/abs/2006.07733."""

from lightly.loss import NegativeCosineSimilarity
from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead
from torch import Tensor

from medfew.models import Backbone
from medfew.ssl.base import MOMENTUM_SGD, MomentumMethod


class BYOL(MomentumMethod):
    """The student's prediction of one view regresses the teacher's projection of the other.

    Projector and predictor are 2-layer MLPs with the same hidden width (the paper: 4096; lightly's
    CIFAR-10 benchmark: 1024). (B, C, H, W) x 2 -> scalar loss (symmetrised negative cosine similarity).
    """

    recipe = MOMENTUM_SGD

    def __init__(
        self,
        backbone: Backbone,
        hidden_dim: int = 1024,
        output_dim: int = 256,
        predictor_hidden_dim: int | None = None,
        predictor_lr_scale: float = 1.0,
        momentum: float = 0.96,
    ) -> None:
        super().__init__(backbone, lambda: BYOLProjectionHead(backbone.num_features, hidden_dim, output_dim), momentum)
        self.predictor = BYOLPredictionHead(output_dim, predictor_hidden_dim or hidden_dim, output_dim)
        self.criterion = NegativeCosineSimilarity()
        self.lr_scale = {"predictor": predictor_lr_scale}

    def forward(self, views: list[Tensor], step: int, max_steps: int) -> Tensor:
        self.update_teacher(step, max_steps)
        p0, p1 = (self.predictor(self.student(view)) for view in views)
        z0, z1 = (self.teacher(view) for view in views)
        return 0.5 * (self.criterion(p0, z1) + self.criterion(p1, z0))

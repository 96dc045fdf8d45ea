"""DINO: Caron et al., "Emerging Properties in Self-Supervised Vision Transformers",
ICCV 2021, https://arxiv.org/abs/2104.14294."""

from lightly.loss import DINOLoss
from lightly.models.modules import DINOProjectionHead
from torch import Tensor

from medfew.models import Backbone
from medfew.ssl.base import MomentumMethod, Recipe, ViewSpec


class DINO(MomentumMethod):
    """Self-distillation: the student matches the centred, sharpened teacher on multi-crop views.

    The teacher sees the ``2`` global views, the student every view (global + ``n_local``
    small crops). Local crops are resized to the global size so that every backbone
    (also those whose feature size depends on the input size) takes them.
    (B, C, H, W) x (2 + n_local) -> scalar loss. The teacher is the exported encoder.
    """

    recipe = Recipe(optimizer="adamw", lr=5e-4, weight_decay=0.04, warmup_epochs=10)

    def __init__(
        self,
        backbone: Backbone,
        hidden_dim: int = 1024,
        bottleneck_dim: int = 256,
        output_dim: int = 4096,
        n_local: int = 4,
        local_scale: tuple[float, float] = (0.2, 0.5),
        teacher_temp: float = 0.04,
        warmup_teacher_temp: float = 0.04,
        warmup_teacher_temp_fraction: float = 0.1,
        freeze_last_layer_epochs: int = 1,
        momentum: float = 0.996,
    ) -> None:
        def make_head() -> DINOProjectionHead:
            return DINOProjectionHead(
                backbone.num_features, hidden_dim, bottleneck_dim, output_dim, batch_norm=True,
                freeze_last_layer=freeze_last_layer_epochs,
            )

        super().__init__(backbone, make_head, momentum)
        self.view_spec = ViewSpec(n_global=2, n_local=n_local, local_scale=tuple(local_scale))
        self.teacher_temp = teacher_temp
        self.warmup_teacher_temp = warmup_teacher_temp
        self.warmup_teacher_temp_fraction = warmup_teacher_temp_fraction
        self.criterion = DINOLoss(output_dim=output_dim, teacher_temp=teacher_temp)

    @property
    def encoder(self) -> Backbone:
        return self.teacher_backbone

    def forward(self, views: list[Tensor], step: int, max_steps: int) -> Tensor:
        self.update_teacher(step, max_steps)
        teacher_out = [self.teacher(view) for view in views[:2]]
        student_out = [self.student(view) for view in views]
        warmup = self.warmup_teacher_temp_fraction * max_steps
        weight = min(step / warmup, 1.0) if warmup > 0 else 1.0
        temp = self.warmup_teacher_temp + weight * (self.teacher_temp - self.warmup_teacher_temp)
        return self.criterion(teacher_out, student_out, teacher_temp=temp)

    def on_after_backward(self, epoch: int) -> None:
        self.head.cancel_last_layer_gradients(epoch)

"""DINO: Caron et al., "Emerging Properties in Self-Supervised Vision Transformers",
ICCV 2021, https://arxiv.org/abs/2104.14294."""

from lightly.loss import DINOLoss
from lightly.models.modules import DINOProjectionHead
from torch import Tensor

from medfew.models import Backbone
from medfew.ssl.base import MOMENTUM_SGD, MomentumMethod, ViewSpec
from medfew.ssl.schedules import fraction_of, linear_ramp


class DINO(MomentumMethod):
    """Self-distillation: the student matches the centred, sharpened teacher on multi-crop views.

    The teacher sees the 2 global views, the student every view (global + ``n_local`` small
    crops, resized to the global size so that every backbone takes them). The teacher
    temperature ramps linearly from ``warmup_teacher_temp`` to ``teacher_temp`` over
    ``warmup_teacher_temp_fraction`` of the budget; the centre is an EMA (``center_momentum``)
    of the teacher's outputs; the head's last layer is frozen for the first
    ``freeze_last_layer_fraction`` of the budget (the paper: 1 epoch of 100-800). SGD for
    ConvNets as the authors advise (https://github.com/facebookresearch/dino#resnet-50-and-other-convnets-trainings).
    (B, C, H, W) x (2 + n_local) -> scalar loss. The teacher is the exported encoder.
    """

    recipe = MOMENTUM_SGD

    def __init__(
        self,
        backbone: Backbone,
        hidden_dim: int = 1024,
        bottleneck_dim: int = 256,
        output_dim: int = 2048,
        n_local: int = 0,
        local_scale: tuple[float, float] = (0.2, 0.5),
        teacher_temp: float = 0.04,
        warmup_teacher_temp: float = 0.04,
        warmup_teacher_temp_fraction: float = 0.3,
        student_temp: float = 0.1,
        center_momentum: float = 0.9,
        freeze_last_layer_fraction: float = 0.01,
        momentum: float = 0.96,
    ) -> None:
        def make_head() -> DINOProjectionHead:
            return DINOProjectionHead(backbone.num_features, hidden_dim, bottleneck_dim, output_dim, batch_norm=True)

        super().__init__(backbone, make_head, momentum)
        self.view_spec = ViewSpec(n_global=2, n_local=n_local, local_scale=tuple(local_scale))
        self.teacher_temp = teacher_temp
        self.warmup_teacher_temp = warmup_teacher_temp
        self.warmup_teacher_temp_fraction = warmup_teacher_temp_fraction
        self.freeze_last_layer_fraction = freeze_last_layer_fraction
        self.criterion = DINOLoss(output_dim=output_dim, student_temp=student_temp, center_momentum=center_momentum)

    @property
    def encoder(self) -> Backbone:
        return self.teacher_backbone

    def teacher_temperature(self, step: int, max_steps: int) -> float:
        warmup = fraction_of(max_steps, self.warmup_teacher_temp_fraction)
        return linear_ramp(step, warmup, self.warmup_teacher_temp, self.teacher_temp)

    def forward(self, views: list[Tensor], step: int, max_steps: int) -> Tensor:
        self.update_teacher(step, max_steps)
        teacher_out = [self.teacher(view) for view in views[:2]]
        student_out = [self.student(view) for view in views]
        return self.criterion(teacher_out, student_out, teacher_temp=self.teacher_temperature(step, max_steps))

    def on_after_backward(self, step: int, max_steps: int) -> None:
        if step < fraction_of(max_steps, self.freeze_last_layer_fraction):
            for param in self.head.last_layer.parameters():
                param.grad = None

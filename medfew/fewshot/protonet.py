"""Prototypical Networks.

Snell, Swersky & Zemel, "Prototypical Networks for Few-shot Learning", NeurIPS 2017,
https://arxiv.org/abs/1703.05175. The prototype maths is ``medfew.learners.classifiers``'.
"""

from __future__ import annotations

from torch import Tensor

from medfew.fewshot.episodic import EpisodicLearner
from medfew.fewshot.meta_training import MetaTraining
from medfew.learners.backbone import BackboneArg, BaseTrainer, Pretrain
from medfew.learners.classifiers import DISTANCES, check_distance, class_means, protonet_scale, prototype_logits

__all__ = ["DISTANCES", "ProtoNet"]


class ProtoNet(EpisodicLearner):
    """Class prototype = mean support embedding; a query scores -distance to each prototype.

    Args:
        backbone: a Backbone, or a factory building one (Conv-4, timm, an SSL export).
        distance: "euclidean" (squared, as in the paper) or "cosine" (times ``scale``).
        scale: temperature multiplying cosine similarities (ignored for euclidean).
        meta_train_steps: 0 means plain prototypes on the given backbone.
        meta_training: episodic training settings.
        pretrain, base_training: optional earlier stages (``BackboneLearner``); ``ssl_protonet``
            meta-trains from an SSL backbone.
    """

    def __init__(
        self,
        backbone: BackboneArg,
        distance: str = "euclidean",
        scale: float = 10.0,
        meta_train_steps: int = 0,
        meta_training: MetaTraining | None = None,
        pretrain: Pretrain | None = None,
        base_training: BaseTrainer | None = None,
    ) -> None:
        super().__init__(backbone, pretrain, base_training, meta_train_steps, meta_training)
        self.distance = check_distance(distance)
        self.scale = scale

    def adapt(self, support: Tensor, support_labels: Tensor, val: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """(n_way, D) prototypes: the mean embedding of each class's support images."""
        return class_means(self.features(support), support_labels)

    def logits(self, prototypes: Tensor, query: Tensor) -> Tensor:
        """(n_query, n_way): -||f(x) - c_k||^2, or scale * cos(f(x), c_k)."""
        return prototype_logits(self.features(query), prototypes, self.distance, protonet_scale(self.distance, self.scale))

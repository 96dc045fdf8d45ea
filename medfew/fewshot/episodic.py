"""What the meta-learners share: their episodic rule is their ``adapt`` + ``logits``."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

from torch import Tensor

from medfew.fewshot.meta_training import MetaTraining
from medfew.learners.backbone import BackboneArg, BackboneLearner, BaseTrainer, Pretrain


class EpisodicLearner(BackboneLearner):
    """A ``BackboneLearner`` whose per-task rule is the one meta-training trains (ProtoNet, Matching
    Networks, the MAML family): ``episode_logits = logits(adapt(support), query)``.

    Subclasses implement ``adapt`` and ``logits``; while the module is in training mode and
    autograd is on, both keep the graph to the meta-parameters (meta-training); otherwise
    they run without it (evaluation), so evaluating many episodes does not grow memory.

    Args:
        backbone, pretrain, base_training: see ``BackboneLearner`` (SSL pretraining and base
            training run before meta-training, e.g. ``ssl_protonet``).
        meta_train_steps: meta-iterations run by ``prepare``; 0 means no meta-training.
        meta_training: episode shapes, meta-batch, optimiser and trainer settings (default: ``MetaTraining()``).
    """

    def __init__(
        self,
        backbone: BackboneArg,
        pretrain: Pretrain | None = None,
        base_training: BaseTrainer | None = None,
        meta_train_steps: int = 0,
        meta_training: MetaTraining | None = None,
    ) -> None:
        super().__init__(backbone, pretrain, base_training, meta_train_steps, meta_training or MetaTraining())

    @abstractmethod
    def logits(self, state: Any, query: Tensor) -> Tensor:
        """(n_query, n_way) unnormalised class scores of ``query`` under an adapted ``state``."""

    def predict(self, state: Any, query: Tensor) -> Tensor:
        return self.logits(state, query).softmax(dim=-1)

    def episode_logits(self, support: Tensor, support_labels: Tensor, query: Tensor) -> Tensor:
        return self.logits(self.adapt(support, support_labels), query)

"""Gradient-based meta-learning through learn2learn: what MAML, ANIL and Meta-SGD share.

The network is a backbone plus a linear head of ``n_way`` outputs, split into a part
that is fixed in the inner loop (``body``: nothing for MAML, the backbone for ANIL) and a
learn2learn wrapper (``l2l.algorithms.MAML`` / ``MetaSGD``) around the part adapted by
gradient steps on the support loss. Per episode: ``clone()``, ``inner_steps`` calls of
``adapt(loss)``, then the query logits of the clone; while meta-training the clone keeps
the graph to the meta-parameters (second order unless ``first_order``).

BatchNorm (deliberate choice): every BatchNorm layer uses the statistics of the batch
it sees, in the inner loop, on the query set and at evaluation time alike — running
statistics are switched off. This is what the MAML authors' code does (transductive
batch statistics, Finn et al. 2017) and what learn2learn's vision models do
(``track_running_stats=False``). It also avoids a learn2learn pitfall: ``clone()``
shares buffers that do not require grad, so running statistics updated by a clone
would leak into the meta-parameters' module. Consequence: a query set is normalised
with its own statistics, so predict on the whole query set in one batch.

Evaluation (module in eval mode, or autograd off): the clone is detached from the
meta-parameters before adapting and first-order steps are taken, so evaluating many
episodes neither builds second-order graphs nor grows memory (a known learn2learn issue).
Episodes with fewer classes than the head use its first n_way outputs.

Zero head (``zero_head``): each episode's clone starts with an all-zero head, the "zeroing trick"
of Kao et al., "MAML is a Noisy Contrastive Learner in Classification", ICLR 2022,
https://arxiv.org/abs/2106.15367. A head initialised at random (or meta-learned across
episodes whose labels are shuffled) biases every prediction; from zero, the first inner step
turns the head into the support's centred class means, so even a few small inner steps give a
nearest-mean rule, where a random head with the papers' inner step size (0.01) stays at chance.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from learn2learn.algorithms.base_learner import BaseLearner
from learn2learn.utils import detach_module
from torch import Tensor, nn

from medfew.fewshot.episodic import EpisodicLearner
from medfew.fewshot.meta_training import MetaTraining
from medfew.learners.backbone import BackboneArg, Pretrain
from medfew.learners.base import support_ways


def use_batch_statistics(module: nn.Module) -> nn.Module:
    """Make every BatchNorm layer of ``module`` normalise with batch statistics, always."""
    for layer in module.modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm):
            layer.track_running_stats = False
            layer.running_mean = layer.running_var = layer.num_batches_tracked = None
    return module


def zero_last_linear(clone: nn.Module) -> None:
    """Set the weight and bias of the last linear layer of a learn2learn clone to zero, keeping the
    graph to the meta-parameters (their gradient through it is zero)."""
    head = [module for module in clone.modules() if isinstance(module, nn.Linear)][-1]
    for name, value in head._parameters.items():
        head._parameters[name] = value * 0


@dataclass(frozen=True)
class AdaptedNetwork:
    """An episode's adapted classifier: body + adapted clone; its first ``n_way`` outputs count."""

    network: nn.Module
    n_way: int


class GradientMetaLearner(EpisodicLearner):
    """Shared inner loop of the MAML family; subclasses choose what the inner loop adapts.

    Args:
        backbone: a Backbone, or a factory building one.
        n_way: outputs of the linear head (the most ways an episode may have).
        inner_lr: inner-loop step size (Meta-SGD: initial per-parameter step size).
        inner_steps: inner gradient steps while meta-training.
        eval_inner_steps: inner gradient steps at evaluation (val and novel episodes).
        first_order: drop second-order terms of the meta-gradient (FOMAML).
        meta_train_steps, meta_training, pretrain: see ``EpisodicLearner``; after SSL pretraining
            the export is split again (``use_backbone``) with a new head.
        zero_head: start each episode's inner loop from an all-zero head (see the module docstring).
    """

    def __init__(
        self,
        backbone: BackboneArg,
        n_way: int = 5,
        inner_lr: float = 0.01,
        inner_steps: int = 5,
        eval_inner_steps: int = 10,
        first_order: bool = False,
        meta_train_steps: int = 0,
        meta_training: MetaTraining | None = None,
        pretrain: Pretrain | None = None,
        zero_head: bool = False,
    ) -> None:
        super().__init__(backbone, pretrain, None, meta_train_steps, meta_training)
        if min(n_way, inner_steps, eval_inner_steps) < 1:
            raise ValueError(
                f"n_way, inner_steps and eval_inner_steps must be >= 1, got {n_way}, {inner_steps}, {eval_inner_steps}"
            )
        self.n_way, self.inner_lr, self.first_order, self.zero_head = n_way, inner_lr, first_order, zero_head
        self.inner_steps, self.eval_inner_steps = inner_steps, eval_inner_steps
        self.use_backbone(self.require_backbone())

    def use_backbone(self, backbone: nn.Module) -> None:
        """Split ``backbone`` + a new (D, n_way) linear head into ``body`` and the learn2learn wrapper
        ``adaptive``; the base's ``backbone`` slot is left empty (the split holds the network)."""
        body = use_batch_statistics(backbone)
        self.body, self.adaptive = self.split(body, nn.Linear(body.num_features, self.n_way), self.inner_lr, self.first_order)
        frozen = [name for name, p in self.adaptive.named_parameters() if not p.requires_grad]
        if frozen:  # learn2learn's MAML.adapt would print a traceback and fail obscurely
            raise ValueError(f"{type(self).__name__} adapts every parameter it wraps, but these are frozen: {frozen}")
        self.backbone = None

    @abstractmethod
    def split(
        self, body: nn.Module, head: nn.Linear, inner_lr: float, first_order: bool
    ) -> tuple[nn.Module, BaseLearner]:
        """(fixed in the inner loop, learn2learn wrapper of what the inner loop adapts)."""

    def adapt(
        self, support: Tensor, support_labels: Tensor, val: tuple[Tensor, Tensor] | None = None
    ) -> AdaptedNetwork:
        """Clone the adapted part and take inner gradient steps on the support cross-entropy."""
        n_way = support_ways(support_labels, self.n_way)
        meta = self.meta_training_graph()
        with torch.set_grad_enabled(meta):
            features = self.body(support)
        with torch.enable_grad():
            learner = self.adaptive.clone()
            if not meta:
                detach_module(learner, keep_requires_grad=True)
            if self.zero_head:
                zero_last_linear(learner)
            for _ in range(self.inner_steps if self.training else self.eval_inner_steps):
                loss = F.cross_entropy(learner(features)[:, :n_way], support_labels)
                learner.adapt(loss, first_order=None if meta else True)
        if not meta:
            detach_module(learner)
        return AdaptedNetwork(nn.Sequential(self.body, learner), n_way)

    def logits(self, state: AdaptedNetwork, query: Tensor) -> Tensor:
        """(n_query, n_way) logits of the adapted network; the query set is one batch (BatchNorm)."""
        with torch.set_grad_enabled(self.meta_training_graph()):
            return state.network(query)[:, : state.n_way]

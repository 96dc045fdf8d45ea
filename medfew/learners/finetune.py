"""Fine-tuning: a backbone plus a new head trained on the labelled support set.

The baseline every few-label method must beat (e.g. Raghu et al., "Transfusion:
Understanding Transfer Learning for Medical Imaging", NeurIPS 2019,
https://arxiv.org/abs/1902.07208). ``freeze_backbone`` turns it into a linear probe; the head is
linear, cosine (Baseline++: Chen et al., "A Closer Look at Few-shot Classification", ICLR 2019,
https://arxiv.org/abs/1904.04232) or initialised from the support prototypes (the fine-tuning
stage of P>M>F: Hu et al., "Pushing the Limits of Simple Pipelines for Few-Shot Learning:
External Data and Fine-Tuning Make a Difference", CVPR 2022, https://arxiv.org/abs/2204.07305).
Training runs in memory on the support tensors (no DataLoader): one task is small.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from medfew.data.episodes import to_float
from medfew.learners.backbone import BackboneArg, BackboneLearner, BaseTrainer, MetaTrainer, Pretrain
from medfew.learners.base import support_ways
from medfew.learners.losses import check_loss, classification_loss
from medfew.learners.classifiers import (
    CosineClassifier, check_distance, class_means, protonet_scale, prototype_head, prototype_logits,
)
from medfew.models import Backbone
from medfew.seeding import task_generator
from medfew.training import autocast, autocast_dtype

HEADS = ("linear", "cosine", "prototypes")


class FineTune(BackboneLearner):
    """Backbone + new head, AdamW on cross-entropy (or a noise-robust loss), early stopping on ``val`` when given.

    Args:
        freeze_backbone: train the head only (linear probe); the backbone stays in eval mode.
        head_norm: put a BatchNorm1d without affine parameters before a linear or cosine head, so
            frozen features of any scale are standardised (the linear probe of He et al.,
            "Masked Autoencoders Are Scalable Vision Learners", CVPR 2022).
        steps: optimisation steps (the most when early stopping); a fixed step count
            gives a 10-image support set the same training as a 500-image one.
        batch_size: images per step, drawn without replacement, epoch after epoch (also
            images per forward pass at prediction time).
        eval_every: steps between two val-loss checks (with ``val`` only).
        lr: learning rate of the head; the backbone uses ``lr * backbone_lr_scale``.
        class_weighted: weight the loss by n / (n_way * n_class) against class imbalance.
        augment: batch augmentation of float [0, 1] images (``medical_augment``) or None.
        patience: val checks without a lower val loss before stopping (with ``val`` only).
        precision: ``auto`` (bf16 autocast where the hardware has it: ``medfew.training.resolve_precision``),
            ``32-true``, ``bf16-mixed`` or ``16-mixed`` (with loss scaling) for the training steps
            through the backbone; the weights, predictions and cached-feature head training stay float32.
        channels_last: train the backbone copy with its 4-D (convolution) weights in NHWC layout,
            which oneDNN and cuDNN run faster: 1.5-1.9x per 10-shot Conv-4 episode at 64 px on 2 CPU cores
            with bf16 (``experiments/bench_fewshot.py``, part 3); a network without convolutions is unchanged.
        head: ``linear``; ``cosine`` (``scale * cos(f, w_k)``, Baseline++); or ``prototypes``: a head
            whose logits start as the prototype classifier's on the support set
            (``classifiers.prototype_head`` with ``distance`` and ``scale``), as P>M>F fine-tunes.
        distance, scale: the prototype rule of the ``prototypes`` head and of meta-training
            (``episode_logits``); ``scale`` also multiplies the cosine head's similarities and is
            ignored by the euclidean rule (ProtoNet's plain negative squared distance).
        loss: ``ce`` (cross-entropy) or ``gce`` (generalised cross-entropy, Zhang & Sabuncu 2018, robust to
            flipped labels: ``medfew.learners.losses``), for training and the val loss of early stopping.
        label_smoothing: share of each target spread over the classes (``loss=ce`` only).
        gce_q: q of ``gce`` in (0, 1]: towards 0 it is cross-entropy, at 1 the mean absolute error.
        backbone, pretrain, base_training, meta_train_steps, meta_training: see ``BackboneLearner``;
            with meta-training, P>M>F = SSL ``pretrain`` -> ProtoNet meta-training -> fine-tuning.
    """

    def __init__(
        self,
        backbone: BackboneArg,
        pretrain: Pretrain | None = None,
        freeze_backbone: bool = False,
        head_norm: bool = False,
        steps: int = 300,
        batch_size: int = 64,
        eval_every: int = 20,
        lr: float = 1e-3,
        backbone_lr_scale: float = 1.0,
        weight_decay: float = 1e-4,
        class_weighted: bool = False,
        augment: nn.Module | None = None,
        patience: int = 5,
        precision: str = "auto",
        channels_last: bool = True,
        head: str = "linear",
        distance: str = "euclidean",
        scale: float = 10.0,
        base_training: BaseTrainer | None = None,
        meta_train_steps: int = 0,
        meta_training: MetaTrainer | None = None,
        loss: str = "ce",
        label_smoothing: float = 0.0,
        gce_q: float = 0.7,
    ) -> None:
        super().__init__(backbone, pretrain, base_training, meta_train_steps, meta_training, batch_size)
        self.require_backbone()
        check_loss(loss, label_smoothing, gce_q)
        self.loss_name, self.label_smoothing, self.gce_q = loss, label_smoothing, gce_q
        if head not in HEADS:
            raise ValueError(f"unknown head '{head}'; choose one of {HEADS}")
        if head == "prototypes" and head_norm:
            raise ValueError(
                "head_norm standardises features the prototypes were not computed on; use it with a linear or cosine head"
            )
        self.head, self.distance, self.scale = head, check_distance(distance), scale
        self.freeze_backbone, self.head_norm = freeze_backbone, head_norm
        self.steps, self.eval_every = steps, eval_every
        self.lr, self.backbone_lr_scale = lr, backbone_lr_scale
        self.weight_decay, self.class_weighted = weight_decay, class_weighted
        self.augment = augment
        self.patience = patience
        autocast_dtype(precision, "cpu")  # refuses an unknown value now rather than at the first adapt
        self.precision = precision
        self.channels_last = channels_last

    def episode_logits(self, support: Tensor, support_labels: Tensor, query: Tensor) -> Tensor:
        """Meta-training's rule: prototypes with this learner's ``distance`` (the head P>M>F starts from)."""
        prototypes = class_means(self.features(support), support_labels)
        return prototype_logits(self.features(query), prototypes, self.distance, protonet_scale(self.distance, self.scale))

    def adapt(self, support: Tensor, support_labels: Tensor, val: tuple[Tensor, Tensor] | None = None) -> nn.Sequential:
        """Train a new head (and a copy of the backbone) on the support set; returns backbone + head.

        A frozen backbone without augmentation sees each image once: the head then trains
        on cached features. Batches are drawn from ``medfew.seeding.task_generator``.
        """
        n_way = support_ways(support_labels)
        head = self.new_head(support, support_labels, n_way).to(support.device)
        weight = class_weights(support_labels, n_way) if self.class_weighted else None
        generator = task_generator(support.device)
        if self.freeze_backbone and self.augment is None:
            cached_val = None if val is None else (self.embed(val[0]), val[1])
            self.fit(None, head, self.embed(support), support_labels, cached_val, weight, generator)
            return nn.Sequential(self.backbone, head).eval()
        backbone = copy.deepcopy(self.require_backbone()).requires_grad_(not self.freeze_backbone)
        if self.channels_last:
            backbone.to(memory_format=torch.channels_last)
        self.fit(backbone, head, support, support_labels, val, weight, generator)
        return nn.Sequential(backbone, head).eval()

    def new_head(self, images: Tensor, labels: Tensor, n_way: int) -> nn.Module:
        """A fresh (D, n_way) head; ``prototypes`` starts from the class means of ``images``' frozen features."""
        if self.head == "prototypes":
            prototypes = class_means(self.embed(images), labels, n_way)
            return prototype_head(prototypes, self.distance, protonet_scale(self.distance, self.scale))
        features = self.require_backbone().num_features
        head = nn.Linear(features, n_way) if self.head == "linear" else CosineClassifier(features, n_way, self.scale)
        if not self.head_norm:
            return head
        # momentum None: eval uses the mean of every step's batch statistics, not a blend with the
        # initial (0, 1) that a short run on small-scale features never leaves
        return nn.Sequential(nn.BatchNorm1d(features, affine=False, momentum=None), head)

    def fit(
        self,
        backbone: Backbone | None,
        head: nn.Module,
        x: Tensor,
        y: Tensor,
        val: tuple[Tensor, Tensor] | None,
        weight: Tensor | None,
        generator: torch.Generator | None = None,
    ) -> None:
        """``steps`` AdamW steps on (x, y), keeping the weights of the lowest val loss.

        ``backbone`` None: ``x`` (and val's images) are cached features and only ``head`` trains.
        ``x`` may be uint8 images on another device (base-class data): each batch is moved to the
        head's device and scaled to [0, 1]. Batch order: ``generator`` (on ``x``'s device), or
        torch's global generator when None.
        """
        network = head if backbone is None else nn.Sequential(backbone, head)
        device = next(head.parameters()).device
        groups = [{"params": head.parameters(), "lr": self.lr}]
        if backbone is not None and not self.freeze_backbone:
            groups.append({"params": backbone.parameters(), "lr": self.lr * self.backbone_lr_scale})
        optimizer = torch.optim.AdamW(groups, weight_decay=self.weight_decay)
        dtype = None if backbone is None else autocast_dtype(self.precision, device.type)
        scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
        best_loss, best_state, stale = math.inf, None, 0
        for step, batch in enumerate(batches(len(x), self.batch_size, self.steps, x.device, generator), start=1):
            network.train()
            inputs = x[batch].to(device)
            inputs = to_float(inputs) if inputs.dtype == torch.uint8 else inputs
            if backbone is not None:
                backbone.train(not self.freeze_backbone)
                if self.augment is not None:  # the task's generator where it lives on the images' device
                    same = generator is not None and generator.device == inputs.device
                    inputs = self.augment(inputs, generator if same else None)
            with autocast(dtype, device.type):
                loss = self.criterion(network(inputs), y[batch].to(device), weight)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"FineTune: loss became {loss.item()} at step {step}; lower lr (now {self.lr})")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            if val is None or step % self.eval_every:
                continue
            val_loss = self.loss(network, *val, weight)
            if val_loss < best_loss:
                best_loss, best_state, stale = val_loss, copy.deepcopy(network.state_dict()), 0
            else:
                stale += 1
                if stale >= self.patience:
                    break
        if best_state is not None:
            network.load_state_dict(best_state)

    @torch.no_grad()
    def logits(self, network: nn.Module, images: Tensor) -> Tensor:
        network.eval()
        return torch.cat([network(chunk) for chunk in images.split(self.batch_size)])

    def criterion(self, logits: Tensor, labels: Tensor, weight: Tensor | None) -> Tensor:
        """The training loss (``loss``, ``label_smoothing``, ``gce_q``) of ``logits`` against ``labels``."""
        return classification_loss(logits, labels, self.loss_name, weight, self.label_smoothing, self.gce_q)

    def loss(self, network: nn.Module, images: Tensor, labels: Tensor, weight: Tensor | None) -> float:
        return self.criterion(self.logits(network, images), labels, weight).item()

    def predict(self, state: nn.Sequential, query: Tensor) -> Tensor:
        return torch.softmax(self.logits(state, query), dim=1)


def batches(
    n: int, batch_size: int, steps: int, device: torch.device | str = "cpu", generator: torch.Generator | None = None
) -> Iterator[Tensor]:
    """``steps`` index batches: shuffled passes over range(n), each cut into near-equal batches
    of at most ``batch_size`` (never a batch of one, which BatchNorm cannot train on, when n > 1).
    The shuffles draw from ``generator`` (on ``device``), or torch's global generator when None."""
    step = 0
    while True:
        for batch in torch.randperm(n, device=device, generator=generator).tensor_split(math.ceil(n / batch_size)):
            if step == steps:
                return
            step += 1
            yield batch


def class_weights(labels: Tensor, n_way: int) -> Tensor:
    """(n_way,) weights n / (n_way * count_k): each class contributes equally to the loss."""
    counts = torch.bincount(labels, minlength=n_way).float()
    return len(labels) / (n_way * counts)

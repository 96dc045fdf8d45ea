"""Classic machine learning (scikit-learn) on frozen backbone features or raw pixels.

The linear-evaluation and kNN protocols of self-supervised learning (e.g. Chen et al.,
"A Simple Framework for Contrastive Learning of Visual Representations", ICML 2020,
https://arxiv.org/abs/2002.05709; Wu et al., "Unsupervised Feature Learning via
Non-Parametric Instance Discrimination", CVPR 2018, https://arxiv.org/abs/1805.01978);
with ``backbone: null``, logistic regression on pixels is the floor every method must beat.
"""

from __future__ import annotations

from abc import abstractmethod
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import Tensor

from medfew.learners.backbone import BackboneArg, BackboneLearner, BaseTrainer, MetaTrainer, Pretrain


class FeatureClassifier(BackboneLearner):
    """A scikit-learn classifier fitted on (optionally L2-normalised, then standardised) frozen features.

    The adapted state is the fitted scikit-learn pipeline.

    Args:
        standardize: scale each feature to zero mean and unit variance on the support set.
        normalize: L2-normalise each feature vector first, as RFS does (Tian et al., "Rethinking
            Few-Shot Image Classification: a Good Embedding Is All You Need?", ECCV 2020,
            https://arxiv.org/abs/2003.11539).
        backbone, pretrain, base_training, meta_train_steps, meta_training, batch_size: see ``BackboneLearner``.
    """

    def __init__(
        self,
        backbone: BackboneArg = None,
        pretrain: Pretrain | None = None,
        standardize: bool = True,
        batch_size: int = 256,
        normalize: bool = False,
        base_training: BaseTrainer | None = None,
        meta_train_steps: int = 0,
        meta_training: MetaTrainer | None = None,
    ) -> None:
        super().__init__(backbone, pretrain, base_training, meta_train_steps, meta_training, batch_size)
        self.standardize = standardize
        self.normalize = normalize

    @abstractmethod
    def classifier(self, n_support: int) -> ClassifierMixin:
        """A fresh, unfitted estimator for a support set of ``n_support`` images."""

    def adapt(self, support: Tensor, support_labels: Tensor, val: tuple[Tensor, Tensor] | None = None) -> Pipeline:
        steps = [StandardScaler()] if self.standardize else []
        pipeline = make_pipeline(*steps, self.classifier(len(support)))
        return pipeline.fit(self.frozen_features(support), support_labels.cpu().numpy())

    def predict(self, state: Pipeline, query: Tensor) -> Tensor:
        probs = state.predict_proba(self.frozen_features(query))
        return torch.as_tensor(probs, dtype=torch.float32, device=query.device)

    def frozen_features(self, images: Tensor) -> np.ndarray:
        """(N, D) frozen features as scikit-learn takes them (L2-normalised with ``normalize``)."""
        features = self.embed(images)
        return (F.normalize(features, dim=1) if self.normalize else features).cpu().numpy()


class LogisticRegressionProbe(FeatureClassifier):
    """Multinomial L2-regularised logistic regression (inverse strength ``C``)."""

    def __init__(
        self,
        backbone: BackboneArg = None,
        pretrain: Pretrain | None = None,
        standardize: bool = True,
        C: float = 1.0,
        max_iter: int = 1000,
        class_weight: str | None = None,
        batch_size: int = 256,
        normalize: bool = False,
        base_training: BaseTrainer | None = None,
        meta_train_steps: int = 0,
        meta_training: MetaTrainer | None = None,
    ) -> None:
        super().__init__(backbone, pretrain, standardize, batch_size, normalize, base_training, meta_train_steps, meta_training)
        self.C, self.max_iter, self.class_weight = C, max_iter, class_weight

    def classifier(self, n_support: int) -> LogisticRegression:
        return LogisticRegression(C=self.C, max_iter=self.max_iter, class_weight=self.class_weight)


class KNearestNeighbors(FeatureClassifier):
    """k-nearest-neighbour vote (k capped at the support size), uniform or distance-weighted."""

    def __init__(
        self,
        backbone: BackboneArg = None,
        pretrain: Pretrain | None = None,
        standardize: bool = True,
        n_neighbors: int = 5,
        weights: str = "distance",
        metric: str = "cosine",
        batch_size: int = 256,
        normalize: bool = False,
        base_training: BaseTrainer | None = None,
        meta_train_steps: int = 0,
        meta_training: MetaTrainer | None = None,
    ) -> None:
        super().__init__(backbone, pretrain, standardize, batch_size, normalize, base_training, meta_train_steps, meta_training)
        self.n_neighbors, self.weights, self.metric = n_neighbors, weights, metric

    def classifier(self, n_support: int) -> KNeighborsClassifier:
        return KNeighborsClassifier(n_neighbors=min(self.n_neighbors, n_support), weights=self.weights, metric=self.metric)

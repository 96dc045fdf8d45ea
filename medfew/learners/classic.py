"""Classic machine learning (scikit-learn) on frozen backbone features or raw pixels.

The linear-evaluation and kNN protocols of self-supervised learning (e.g. Chen et al.,
"A Simple Framework for Contrastive Learning of Visual Representations", ICML 2020,
https://arxiv.org/abs/2002.05709; Wu et al., "Unsupervised Feature Learning via
Non-Parametric Instance Discrimination", CVPR 2018, https://arxiv.org/abs/1805.01978);
with ``backbone: null``, logistic regression on pixels is the floor every method must beat.
"""

from __future__ import annotations

from abc import abstractmethod

import torch
from sklearn.base import ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import Tensor

from medfew.learners.backbone import BackboneFactory, BackboneLearner, Pretrain


class FeatureClassifier(BackboneLearner):
    """A scikit-learn classifier fitted on (optionally standardised) frozen features.

    The adapted state is the fitted scikit-learn pipeline.
    """

    def __init__(
        self,
        backbone: BackboneFactory | None = None,
        pretrain: Pretrain | None = None,
        standardize: bool = True,
        batch_size: int = 256,
    ) -> None:
        super().__init__(backbone, pretrain, batch_size)
        self.standardize = standardize

    @abstractmethod
    def classifier(self, n_support: int) -> ClassifierMixin:
        """A fresh, unfitted estimator for a support set of ``n_support`` images."""

    def adapt(self, support: Tensor, support_labels: Tensor, val: tuple[Tensor, Tensor] | None = None) -> Pipeline:
        steps = [StandardScaler()] if self.standardize else []
        pipeline = make_pipeline(*steps, self.classifier(len(support)))
        return pipeline.fit(self.embed(support).cpu().numpy(), support_labels.cpu().numpy())

    def predict(self, state: Pipeline, query: Tensor) -> Tensor:
        probs = state.predict_proba(self.embed(query).cpu().numpy())
        return torch.as_tensor(probs, dtype=torch.float32, device=query.device)


class LogisticRegressionProbe(FeatureClassifier):
    """Multinomial L2-regularised logistic regression (inverse strength ``C``)."""

    def __init__(
        self,
        backbone: BackboneFactory | None = None,
        pretrain: Pretrain | None = None,
        standardize: bool = True,
        C: float = 1.0,
        max_iter: int = 1000,
        class_weight: str | None = None,
        batch_size: int = 256,
    ) -> None:
        super().__init__(backbone, pretrain, standardize, batch_size)
        self.C, self.max_iter, self.class_weight = C, max_iter, class_weight

    def classifier(self, n_support: int) -> LogisticRegression:
        return LogisticRegression(C=self.C, max_iter=self.max_iter, class_weight=self.class_weight)


class KNearestNeighbors(FeatureClassifier):
    """k-nearest-neighbour vote (k capped at the support size), uniform or distance-weighted."""

    def __init__(
        self,
        backbone: BackboneFactory | None = None,
        pretrain: Pretrain | None = None,
        standardize: bool = True,
        n_neighbors: int = 5,
        weights: str = "distance",
        metric: str = "cosine",
        batch_size: int = 256,
    ) -> None:
        super().__init__(backbone, pretrain, standardize, batch_size)
        self.n_neighbors, self.weights, self.metric = n_neighbors, weights, metric

    def classifier(self, n_support: int) -> KNeighborsClassifier:
        return KNeighborsClassifier(n_neighbors=min(self.n_neighbors, n_support), weights=self.weights, metric=self.metric)

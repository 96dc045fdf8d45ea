"""The transfer baselines of the few-shot literature by config: Baseline++ (Chen et al. 2019) and
RFS (Tian et al. 2020), each = base-class training + a per-task classifier on frozen features."""

import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from medfew.learners.base_training import BaseTraining
from medfew.learners.classic import LogisticRegressionProbe
from medfew.learners.classifiers import CosineClassifier
from medfew.learners.finetune import FineTune
from medfew.learners.registry import CONFIG_DIR, with_learner


def build(name: str, **overrides):
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        root = compose("config", overrides=["data=bloodcells", "data.image_size=32", "protocol=episodes"])
        cfg = with_learner(root, name, overrides)
    torch.manual_seed(0)
    return instantiate(cfg.learner)


def test_baseline_pp_is_a_cosine_head_on_a_frozen_base_trained_backbone():
    learner = build("baseline_pp", steps=5)
    assert isinstance(learner, FineTune) and learner.head == "cosine" and learner.freeze_backbone
    assert isinstance(learner.base_training, BaseTraining) and learner.base_training.head == "cosine"
    support, labels, query = torch.rand(6, 3, 32, 32), torch.tensor([0, 0, 1, 1, 2, 2]), torch.rand(4, 3, 32, 32)
    state = learner.adapt(support, labels)
    head = state[1]
    assert isinstance(head, CosineClassifier)
    # p = softmax(10 cos(f(x), w_k)) on the learner's own (frozen) features
    expected = torch.softmax(10 * F.normalize(learner.embed(query), dim=1) @ F.normalize(head.weight, dim=1).T, dim=1)
    torch.testing.assert_close(learner.predict(state, query), expected)


def test_rfs_is_logistic_regression_on_l2_normalised_base_trained_features():
    learner = build("rfs")
    assert isinstance(learner, LogisticRegressionProbe) and learner.normalize and not learner.standardize
    assert isinstance(learner.base_training, BaseTraining) and learner.base_training.head == "linear"
    features = learner.frozen_features(torch.rand(5, 3, 32, 32))
    torch.testing.assert_close(torch.from_numpy(features).norm(dim=1), torch.ones(5))

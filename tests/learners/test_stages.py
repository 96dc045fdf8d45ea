"""One learner base, composable stages: SSL -> base training -> meta-training in prepare, then
fine-tuning per task; P>M>F's prototype-initialised head; base training; seeded batch order."""

from functools import partial
from pathlib import Path

import pytest
import torch
from torch import nn

from medfew.data import ImageData
from medfew.fewshot import ProtoNet
from medfew.learners.base import PrepareContext
from medfew.learners.base_training import BaseTraining
from medfew.learners.finetune import FineTune, batches
from medfew.learners.prototype import NearestCentroid
from medfew.models import create_backbone, save_backbone

conv4 = partial(create_backbone, "conv4", 1, 16, model_kwargs={"hidden": 8})
SUPPORT = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0], [0.0, 2.0]]).view(4, 1, 1, 2)
LABELS = torch.tensor([0, 0, 1, 1])


class Recorder:
    """Fake stages that log their call and what the learner's backbone was at that moment."""

    def __init__(self, export: Path) -> None:
        self.export, self.calls = export, []

    def pretrain(self, unlabeled, workdir, seed, cache=None, monitor=None) -> Path:
        self.calls.append(("pretrain", seed))
        return self.export

    def fit(self, learner, context, steps=None) -> None:
        first_weight = learner.backbone.net.features[0][0].weight.detach().clone()
        self.calls.append(("base_training" if steps is None else f"meta_training x{steps}", first_weight))


def test_prepare_runs_the_stages_in_order_on_the_pretrained_backbone(tmp_path: Path):
    torch.manual_seed(7)
    pretrained = conv4()
    record = Recorder(save_backbone(pretrained, tmp_path / "export.safetensors"))
    torch.manual_seed(0)
    learner = NearestCentroid(conv4, pretrain=record.pretrain, base_training=record, meta_train_steps=3, meta_training=record)
    unlabeled = ImageData(torch.zeros(4, 1, 16, 16, dtype=torch.uint8), torch.full((4,), -1), ("a",))
    learner.prepare(PrepareContext(tmp_path, seed=5, base=unlabeled, unlabeled=unlabeled))
    assert [call[0] for call in record.calls] == ["pretrain", "base_training", "meta_training x3"]
    assert record.calls[0][1] == 5
    for _, weight in record.calls[1:]:  # both later stages saw the SSL export, not the random init
        torch.testing.assert_close(weight, pretrained.net.features[0][0].weight)
    assert not learner.training


def test_a_stage_without_a_backbone_or_a_recipe_is_refused():
    with pytest.raises(ValueError, match="base_training is set but backbone is None"):
        NearestCentroid(None, base_training=BaseTraining())
    with pytest.raises(ValueError, match="meta_train_steps = 2 but no meta_training recipe"):
        FineTune(conv4, meta_train_steps=2)


def test_finetune_meta_trains_with_the_prototype_rule_of_its_head():
    """FineTune's episodic rule (what its meta-training stage trains) is ProtoNet's with the same distance."""
    learner = FineTune(nn.Flatten(), head="prototypes", distance="cosine", scale=10.0)
    protonet = ProtoNet(nn.Flatten(), distance="cosine", scale=10.0)
    query = torch.tensor([[2.0, 1.0]]).view(1, 1, 1, 2)
    expected = 10 * torch.tensor([[2 / 5**0.5, 1 / 5**0.5]])  # cos to (1, 0) and (0, 3)
    torch.testing.assert_close(learner.episode_logits(SUPPORT, LABELS, query), expected)
    torch.testing.assert_close(protonet.episode_logits(SUPPORT, LABELS, query), expected)
    plain = FineTune(nn.Flatten())  # euclidean: ProtoNet's -||f - c_k||^2 = -(1 + 1), -(4 + 4); scale ignored
    torch.testing.assert_close(plain.episode_logits(SUPPORT, LABELS, query), torch.tensor([[-2.0, -8.0]]))


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_pmf_head_before_fine_tuning_predicts_as_protonet(distance):
    """P>M>F's fine-tuning starts from the meta-trained ProtoNet: with 0 steps both give one answer."""
    torch.manual_seed(0)
    backbone = conv4().eval()
    support, labels, query = torch.rand(6, 1, 16, 16), torch.tensor([0, 0, 1, 1, 2, 2]), torch.rand(5, 1, 16, 16)
    pmf = FineTune(backbone, head="prototypes", distance=distance, scale=10.0, steps=0)
    protonet = ProtoNet(backbone, distance=distance, scale=10.0).eval()
    expected = protonet.predict(protonet.adapt(support, labels), query)
    torch.testing.assert_close(pmf.predict(pmf.adapt(support, labels), query), expected, rtol=1e-4, atol=1e-5)
    pmf.steps = 5
    moved = pmf.predict(pmf.adapt(support, labels), query)
    assert not torch.allclose(moved, expected, atol=1e-4)  # fine-tuning then moves it


def test_base_training_trains_the_backbone_on_every_base_class_reproducibly(tiny_data: ImageData, tmp_path: Path):
    def run() -> FineTune:
        torch.manual_seed(0)
        learner = FineTune(partial(create_backbone, "conv4", 1, 32, model_kwargs={"hidden": 8}), base_training=stage)
        learner.prepare(PrepareContext(tmp_path, seed=3, base=tiny_data))
        return learner

    stage = BaseTraining(steps=3, batch_size=8, lr=0.01, head="cosine", precision="32-true")
    torch.manual_seed(0)
    initial = partial(create_backbone, "conv4", 1, 32, model_kwargs={"hidden": 8})().state_dict()
    first, second = run(), run()
    changed = [k for k, v in first.backbone.state_dict().items() if not torch.equal(v, initial[k])]
    assert changed and not first.training
    for key, value in first.state_dict().items():  # same seed, same draws: the same weights
        assert torch.equal(value, second.state_dict()[key]), key
    assert set(first.state_dict()) == set(FineTune(conv4).state_dict())  # the base head is not kept
    with pytest.raises(ValueError, match="base_training needs labelled base classes"):
        FineTune(conv4, base_training=stage).prepare(PrepareContext(tmp_path))


def test_batch_order_comes_from_the_generator_alone():
    torch.manual_seed(0)
    before = torch.get_rng_state()
    first = list(batches(10, 4, steps=5, generator=torch.Generator().manual_seed(3)))
    second = list(batches(10, 4, steps=5, generator=torch.Generator().manual_seed(3)))
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    assert torch.equal(torch.get_rng_state(), before)  # torch's global generator is untouched
    assert [len(b) for b in first] == [4, 3, 3, 4, 3]

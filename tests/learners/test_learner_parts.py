"""The shared backbone logic, class weights and step batches, on tiny tensors."""

import copy
from functools import partial
from pathlib import Path

import pytest
import torch

from medfew.data import ImageData
from medfew.learners.base import PrepareContext
from medfew.learners.finetune import FineTune, batches, class_weights
from medfew.learners.prototype import NearestCentroid
from medfew.models import create_backbone, save_backbone

conv4 = partial(create_backbone, "conv4", 1, 16, model_kwargs={"hidden": 8})


def test_class_weights_equalise_classes():
    # 3 of class 0, 1 of class 1: n / (n_way * count) = 4 / 6 and 4 / 2
    assert class_weights(torch.tensor([0, 0, 0, 1]), 2).tolist() == pytest.approx([2 / 3, 2.0])


def test_batches_cover_every_image_per_pass_and_never_hold_one():
    torch.manual_seed(0)
    got = list(batches(65, 64, steps=4, device=torch.device("cpu")))
    assert [len(b) for b in got] == [33, 32, 33, 32]
    assert sorted(torch.cat(got[:2]).tolist()) == list(range(65))


def test_linear_probe_standardises_with_the_support_statistics_after_few_steps():
    # a 3-image support set, 3 steps: the head's eval-time BatchNorm must hold the support's mean and
    # variance, not a blend with its initial (0, 1) that leaves small-scale random features unscaled
    torch.manual_seed(0)
    learner = FineTune(conv4, freeze_backbone=True, head_norm=True, steps=3)
    support = torch.rand(3, 1, 16, 16)
    norm = learner.adapt(support, torch.tensor([0, 1, 2]))[1][0]
    features = learner.embed(support)
    assert torch.allclose(norm.running_mean, features.mean(0), atol=1e-6)
    assert torch.allclose(norm.running_var, features.var(0), rtol=1e-4, atol=1e-8)


def test_channels_last_trains_a_copy_in_nhwc_that_predicts_as_nchw():
    torch.manual_seed(0)
    support, labels, query = torch.rand(6, 1, 16, 16), torch.tensor([0, 0, 1, 1, 2, 2]), torch.rand(4, 1, 16, 16)
    learner = FineTune(conv4, steps=20, lr=0.01, augment=None, precision="32-true")
    adapted = learner.adapt(support, labels)
    conv = lambda network: [m for m in network.modules() if isinstance(m, torch.nn.Conv2d)][-1].weight  # noqa: E731
    assert conv(adapted).is_contiguous(memory_format=torch.channels_last) and not conv(adapted).is_contiguous()
    assert conv(learner.backbone).is_contiguous()  # the learner's own backbone keeps its layout
    assert learner.predict(adapted, support).argmax(1).tolist() == labels.tolist()
    nchw = copy.deepcopy(adapted).to(memory_format=torch.contiguous_format)
    assert conv(nchw).is_contiguous()
    assert torch.allclose(learner.predict(nchw, query), learner.predict(adapted, query), atol=1e-6)
    learner.channels_last = False
    assert conv(learner.adapt(support, labels)).is_contiguous()


def test_pretrain_step_replaces_the_backbone(tmp_path: Path):
    calls = []

    def pretrain(unlabeled, workdir, seed, cache=None, monitor=None):
        calls.append((len(unlabeled), workdir, seed, cache))
        torch.manual_seed(123)
        return save_backbone(conv4(), workdir / "backbone.safetensors")

    learner = NearestCentroid(conv4, pretrain=pretrain)
    pool = torch.zeros(6, 1, 16, 16, dtype=torch.uint8)
    unlabeled = ImageData(pool, torch.full((6,), -1), ("a", "b"))
    learner.prepare(PrepareContext(workdir=tmp_path, seed=3, unlabeled=unlabeled, cache=tmp_path / "cache"))
    assert calls == [(6, tmp_path / "ssl", 3, tmp_path / "cache")]
    torch.manual_seed(123)
    expected = conv4()
    for got, want in zip(learner.backbone.net.state_dict().values(), expected.net.state_dict().values()):
        assert torch.equal(got, want)


def test_pretrain_needs_a_backbone_and_a_pool(tmp_path: Path):
    with pytest.raises(ValueError, match="pretrain is set but backbone is None"):
        NearestCentroid(None, pretrain=lambda *args: None)
    with pytest.raises(ValueError, match="needs unlabeled images"):
        NearestCentroid(conv4, pretrain=lambda *args: None).prepare(PrepareContext(workdir=tmp_path))


def test_prototype_probabilities_closed_form():
    # pixels, no normalisation: prototypes (0, 0) and (2, 0); query (1.5, 0) is at squared distances 2.25 and 0.25
    learner = NearestCentroid(None, normalize=False, scale=1.0)
    support = torch.tensor([[0.0, 0.0], [0.0, 0.0], [2.0, 0.0], [2.0, 0.0]]).view(4, 1, 1, 2)
    state = learner.adapt(support, torch.tensor([0, 0, 1, 1]))
    probs = learner.predict(state, torch.tensor([[1.5, 0.0]]).view(1, 1, 1, 2))
    expected = torch.softmax(torch.tensor([-2.25, -0.25]), dim=0)
    assert torch.allclose(probs[0], expected)


def test_centred_prototypes_keep_brightness_that_l2_normalisation_loses():
    """Flat dark and bright images: L2 normalisation alone maps both to one direction (every query
    ties), centring on the mean of the class means first (CL2N) separates them."""
    images = torch.cat([torch.full((3, 1, 4, 4), 0.1), torch.full((3, 1, 4, 4), 0.9)])
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    l2 = NearestCentroid(None, normalize=True)
    torch.testing.assert_close(l2.predict(l2.adapt(images, labels), images), torch.full((6, 2), 0.5))
    centred = NearestCentroid(None, normalize=True, center=True)
    state = centred.adapt(images, labels)
    torch.testing.assert_close(state.centre, torch.full((16,), 0.5))
    assert (centred.predict(state, images).argmax(dim=1) == labels).all()

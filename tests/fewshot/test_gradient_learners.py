"""MAML family: second- vs first-order meta-gradients, ANIL's frozen body, Meta-SGD's step sizes."""

import copy

import pytest
import torch
import torch.nn.functional as F

from medfew.data import Episode, EpisodeSampler
from medfew.fewshot.anil import ANIL
from medfew.fewshot.maml import MAML
from medfew.fewshot.metasgd import MetaSGD


@pytest.fixture(scope="module")
def episode(pbc_split) -> Episode:
    sampler = EpisodeSampler(pbc_split["base"], n_way=3, n_shot=2, n_query=3)
    return sampler.load(sampler.sample_indices(torch.Generator().manual_seed(0)))


def query_loss(learner, episode: Episode) -> torch.Tensor:
    state = learner.adapt(episode.support, episode.support_labels)
    return F.cross_entropy(learner.logits(state, episode.query), episode.query_labels)


def meta_gradient(tiny_conv4, first_order: bool, episode: Episode) -> tuple[MAML, list[torch.Tensor]]:
    torch.manual_seed(0)
    learner = MAML(tiny_conv4, n_way=3, inner_lr=0.5, inner_steps=1, first_order=first_order).train()
    query_loss(learner, episode).backward()
    return learner, [p.grad.clone() for p in learner.parameters()]


def test_second_order_meta_gradient_differs_from_first_order(episode, tiny_conv4):
    _, second = meta_gradient(tiny_conv4, False, episode)
    _, first = meta_gradient(tiny_conv4, True, episode)
    assert len(second) == len(first)
    # the conv weights' gradients differ by the Hessian term
    relative = (second[0] - first[0]).norm() / first[0].norm()
    assert relative > 1e-3


def test_first_order_meta_gradient_is_the_query_gradient_at_the_adapted_weights(episode, tiny_conv4):
    learner, first = meta_gradient(tiny_conv4, True, episode)
    learner.zero_grad()
    adapted = learner.adapt(episode.support, episode.support_labels).network[1].module
    network = copy.deepcopy(learner.adaptive.module)
    with torch.no_grad():
        for target, value in zip(network.parameters(), adapted.parameters()):
            target.copy_(value)
    loss = F.cross_entropy(network(episode.query)[:, :3], episode.query_labels)
    expected = torch.autograd.grad(loss, list(network.parameters()))
    for got, want in zip(first, expected):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_anil_inner_loop_leaves_the_body_unchanged(episode, tiny_conv4):
    torch.manual_seed(0)
    learner = ANIL(tiny_conv4, n_way=3, inner_lr=0.5, inner_steps=2).train()
    body_before = {k: v.clone() for k, v in learner.body.state_dict().items()}
    state = learner.adapt(episode.support, episode.support_labels)
    body, head = state.network
    for key, value in body.state_dict().items():
        assert torch.equal(value, body_before[key]), key
    moved = (head.module.weight - learner.adaptive.module.weight).abs().max()
    assert moved > 1e-4  # the head did adapt
    F.cross_entropy(learner.logits(state, episode.query), episode.query_labels).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in learner.body.parameters())


def test_meta_sgd_learns_its_step_sizes(episode, tiny_conv4):
    torch.manual_seed(0)
    learner = MetaSGD(tiny_conv4, n_way=3, inner_lr=0.1, inner_steps=1).train()
    query_loss(learner, episode).backward()
    assert all(lr.grad is not None and lr.grad.abs().sum() > 0 for lr in learner.adaptive.lrs)


@pytest.mark.parametrize("learner_class", [MAML, ANIL, MetaSGD])
def test_evaluation_adapts_without_a_graph_to_the_meta_parameters(learner_class, episode, tiny_conv4):
    torch.manual_seed(0)
    learner = learner_class(tiny_conv4, n_way=3, inner_steps=1, eval_inner_steps=3).eval()
    state = learner.adapt(episode.support, episode.support_labels)
    adapted = list(state.network[1].parameters())
    assert all(p.grad_fn is None and not p.requires_grad for p in adapted)
    probs = learner.predict(state, episode.query)
    assert probs.shape == (9, 3) and not probs.requires_grad
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(9))


def test_head_smaller_than_the_episode_is_refused(episode, tiny_conv4):
    learner = MAML(tiny_conv4, n_way=2)
    with pytest.raises(ValueError, match="3 classes but this learner's head has 2 outputs"):
        learner.adapt(episode.support, episode.support_labels)


def test_a_zero_head_makes_the_first_inner_step_a_class_mean_rule(tiny_conv4):
    """From a zero head, one inner step of ANIL sets head row k to inner_lr x the mean over the support
    of (y_k - 1 / n_way) f: the support's centred class means; the meta-parameters keep their head."""
    torch.manual_seed(0)
    learner = ANIL(tiny_conv4, n_way=2, inner_lr=0.01, eval_inner_steps=1, zero_head=True).eval()
    images = torch.cat([torch.full((4, 3, 32, 32), 0.2), torch.full((4, 3, 32, 32), 0.8)]) + 0.05 * torch.rand(8, 3, 32, 32)
    labels = torch.arange(2).repeat_interleave(4)
    before = learner.adaptive.module.weight.detach().clone()
    state = learner.adapt(images, labels)
    features = learner.body(images).detach()
    expected = 0.01 * (F.one_hot(labels).float() - 0.5).T @ features / len(labels)
    torch.testing.assert_close(state.network[1].module.weight, expected)
    assert (learner.predict(state, images).argmax(dim=1) == labels).all()
    assert torch.equal(learner.adaptive.module.weight, before)

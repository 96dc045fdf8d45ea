import functools

import pytest
import torch

from medfew.ssl import DINO, METHODS, MoCo, Views, build_augment, build_method


@pytest.mark.parametrize("name", list(METHODS))
def test_loss_is_finite_and_decreases_on_a_fixed_batch(name, pbc32, tiny_heads, tiny_backbone):
    torch.manual_seed(0)
    heads = tiny_heads[name] | ({"queue_size": 0} if name == "moco" else {})  # a queue of this batch's own keys
    method = METHODS[name](tiny_backbone(), **heads)
    views = Views(build_augment(None, 32), method.view_spec, 32)(pbc32.images)
    assert len(views) == method.view_spec.n_global + method.view_spec.n_local
    optimizer = torch.optim.Adam([p for p in method.parameters() if p.requires_grad], lr=1e-3)
    losses = []
    for step in range(8):
        loss = method(views, step, 8)
        optimizer.zero_grad()
        loss.backward()
        method.on_after_backward(step, 8)
        optimizer.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0] - 0.05, losses


def test_teacher_starts_as_the_student_and_follows_by_ema(tiny_heads, tiny_backbone):
    method = MoCo(tiny_backbone(), **tiny_heads["moco"], momentum=0.99)
    student = dict(method.backbone.named_parameters())
    for key, value in method.teacher_backbone.named_parameters():
        assert torch.equal(value, student[key]) and not value.requires_grad
    before = {k: v.clone() for k, v in method.teacher_head.named_parameters()}
    with torch.no_grad():
        for p in method.head.parameters():
            p.add_(1.0)
    method.update_teacher(step=0, max_steps=10)  # momentum 0.99 at step 0
    for key, value in method.teacher_head.named_parameters():
        assert torch.allclose(value, before[key] + 0.01, atol=1e-6)


def test_dino_exports_its_teacher(tiny_heads, tiny_backbone):
    method = DINO(tiny_backbone(), **tiny_heads["dino"])
    assert method.encoder is method.teacher_backbone


def test_unknown_method_lists_the_valid_ones(tiny_backbone):
    with pytest.raises(KeyError, match="unknown SSL method 'simclrr'.*simclr, moco, byol, simsiam, dino, barlow_twins, vicreg"):
        build_method("simclrr", tiny_backbone())


def test_a_partial_builds_the_method(tiny_backbone):
    method = build_method(functools.partial(MoCo, queue_size=8, output_dim=4), tiny_backbone())
    assert isinstance(method, MoCo) and method.queue.size == (8, 4)

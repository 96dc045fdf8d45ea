"""Episodes: shapes, labels 0..N-1, disjoint support / query, seeded reproducibility, clear errors."""

import pytest
import torch

from medfew.data import EpisodeSampler, EpisodeSet, ImageData


def test_shapes_labels_and_content(bloodcells: ImageData) -> None:
    sampler = EpisodeSampler(bloodcells, n_way=5, n_shot=2, n_query=3)
    indices = sampler.sample_indices(torch.Generator().manual_seed(0))
    episode = sampler.load(indices)
    assert episode.support.shape == (10, 3, 64, 64) and episode.query.shape == (15, 3, 64, 64)
    assert episode.support.dtype == torch.float32 and 0 <= episode.support.min() and episode.support.max() <= 1
    assert episode.support_labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert episode.query_labels.tolist() == [label for label in range(5) for _ in range(3)]
    assert len(set(episode.classes.tolist())) == 5 and episode.n_way == 5
    # each episode label is the source class it claims, and pixels are the source pixels / 255
    assert torch.equal(episode.classes[episode.support_labels], bloodcells.labels[indices.support.flatten()])
    assert torch.equal(episode.classes[episode.query_labels], bloodcells.labels[indices.query.flatten()])
    assert torch.equal(episode.query, bloodcells.images[indices.query.flatten()].float() / 255)


def test_support_and_query_are_disjoint(tiny_data: ImageData) -> None:
    sampler = EpisodeSampler(tiny_data, n_way=4, n_shot=5, n_query=5)  # every image of every class
    generator = torch.Generator().manual_seed(1)
    for _ in range(20):
        indices = sampler.sample_indices(generator)
        support, query = set(indices.support.flatten().tolist()), set(indices.query.flatten().tolist())
        assert not support & query and len(support) == 20 and len(query) == 20


def test_seeded_reproducibility(tiny_data: ImageData) -> None:
    sampler = EpisodeSampler(tiny_data, n_way=3, n_shot=1, n_query=2)
    first, again, other = (next(sampler.episodes(seed)) for seed in (7, 7, 8))
    assert torch.equal(first.support, again.support) and torch.equal(first.query, again.query)
    assert torch.equal(first.classes, again.classes)
    assert not (torch.equal(first.support, other.support) and torch.equal(first.classes, other.classes))


def test_episode_set_hash(tiny_data: ImageData) -> None:
    a, b = (EpisodeSet.draw(tiny_data, 3, 1, 2, n_episodes=10, seed=0) for _ in range(2))
    c = EpisodeSet.draw(tiny_data, 3, 1, 2, n_episodes=10, seed=1)
    assert len(a) == 10 and len(a.hash) == 16
    assert a.hash == b.hash and a.hash != c.hash
    assert all(torch.equal(x.query, y.query) for x, y in zip(a, b))
    assert EpisodeSet.draw(tiny_data, 3, 1, 2, n_episodes=9, seed=0).hash != a.hash


def test_class_too_small_is_named(tiny_data: ImageData) -> None:
    with pytest.raises(ValueError, match="tiny: class 'a' has 10 images; n_shot \\+ n_query = 11"):
        EpisodeSampler(tiny_data, n_way=2, n_shot=1, n_query=10)


def test_too_many_ways(tiny_data: ImageData) -> None:
    with pytest.raises(ValueError, match="n_way = 5 but tiny has 4 classes: a, b, c, d"):
        EpisodeSampler(tiny_data, n_way=5, n_shot=1, n_query=1)
    with pytest.raises(ValueError, match="must be >= 1"):
        EpisodeSampler(tiny_data, n_way=2, n_shot=0, n_query=1)
    with pytest.raises(ValueError, match=r"n_way = 1: an episode needs 2 classes or more, else every answer is right \(tiny has 4: a, b, c, d\)"):
        EpisodeSampler(tiny_data, n_way=1, n_shot=1, n_query=1)


def test_unseeded_iteration_leaves_the_global_rng_alone(tiny_data: ImageData) -> None:
    sampler = EpisodeSampler(tiny_data, n_way=2, n_shot=1, n_query=1)
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    next(iter(sampler))
    assert torch.equal(torch.rand(3), expected)


def test_no_query_shares_a_patient_with_its_support(tiny_data: ImageData) -> None:
    patients = torch.arange(len(tiny_data)) // 2  # two images per patient, one class each
    grouped = EpisodeSet.draw(tiny_data, 2, n_shot=2, n_query=3, n_episodes=30, seed=0, groups=patients)
    plain = EpisodeSet.draw(tiny_data, 2, n_shot=2, n_query=3, n_episodes=30, seed=0)

    def shared(episode) -> set[int]:
        return set(patients[episode.support.flatten()].tolist()) & set(patients[episode.query.flatten()].tolist())

    assert sum(bool(shared(e)) for e in plain.indices) > 10  # the leak the groups close
    assert not any(shared(e) for e in grouped.indices)
    for g, p in zip(grouped.indices, plain.indices):  # same draw order: same support, and the same queries where nothing leaked
        assert torch.equal(g.support, p.support) and (shared(p) or torch.equal(g.query, p.query))
    with pytest.raises(ValueError, match=r"tiny: class '.' has 10 images in 5 groups \(patients, near duplicates\); an episode's support holds 1 of them, which leaves 8 images to query, fewer than n_query = 9"):
        EpisodeSet.draw(tiny_data, 2, n_shot=1, n_query=9, n_episodes=5, groups=patients)

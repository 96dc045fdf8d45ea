"""The one seed rule (medfew.seeding)."""

import torch

from medfew.seeding import derive_seed, seeded_generator, task_generator


def test_derive_seed_keeps_the_old_rule_for_one_integer_key():
    assert derive_seed(3, 7) == 3 * 100_003 + 7  # medfew.training.EpochSeed, compare.score
    assert derive_seed(5) == 5
    assert derive_seed(1, 2, 3) == (1 * 100_003 + 2) * 100_003 + 3


def test_string_keys_are_stable_and_distinct():
    assert derive_seed(0, "base_training") == derive_seed(0, "base_training")
    assert derive_seed(0, "base_training") != derive_seed(0, "meta_training")
    assert 0 <= derive_seed(2**40, "x", "y", 10**30) < 2**63


def test_task_generator_takes_one_draw_of_the_global_generator():
    torch.manual_seed(0)
    torch.randint(2**62, ())
    expected = torch.rand(3)
    torch.manual_seed(0)
    generator = task_generator()
    assert torch.equal(torch.rand(3), expected)
    assert torch.equal(torch.rand(2, generator=generator), torch.rand(2, generator=seeded_generator(generator.initial_seed())))

"""The one seed rule: a run's seed and a few keys (an epoch, an episode, a stage name) -> one seed.

``derive_seed(seed, key)`` for one integer key is ``seed * 100_003 + key``, the rule medfew has
always used for epochs (``medfew.training.EpochSeed``) and per-task draws
(``medfew.evaluation.compare.score``), so runs draw what earlier runs of the same settings drew.
"""

from __future__ import annotations

import torch

from medfew.hashing import content_hash

STRIDE = 100_003  # a prime above any epoch or episode count: (seed, key) pairs do not collide
SEED_LIMIT = 2**63  # torch.manual_seed takes any non-negative int below 2**64


def derive_seed(seed: int, *keys: int | str) -> int:
    """``seed * 100_003 + key``, folded over ``keys`` (a string key counts as 64 bits of its hash),
    reduced below 2**63. ``derive_seed(s)`` is ``s``."""
    for key in keys:
        number = int(content_hash(key), 16) if isinstance(key, str) else key
        seed = seed * STRIDE + number
    return seed % SEED_LIMIT


def seeded_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with ``seed``."""
    return torch.Generator(device=device).manual_seed(seed)


def task_generator(device: torch.device | str = "cpu") -> torch.Generator:
    """A generator for one task's draws (a fine-tuning run's batch order), seeded by one draw of torch's
    global generator, which the evaluation protocol reseeds before every task
    (``derive_seed(seed, episode)``): the task draws the same in a resumed run as in an uninterrupted one,
    and the draws of one task do not move those of the next."""
    return seeded_generator(int(torch.randint(2**62, ())), device)

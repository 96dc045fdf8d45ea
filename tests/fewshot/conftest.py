"""Tiny meta-training recipe for the meta-learning tests (data and backbone fixtures: tests/conftest.py)."""

import pytest

from medfew.fewshot import MetaTraining


@pytest.fixture(scope="session")
def tiny_recipe() -> MetaTraining:
    """3-way 1-shot 2-query episodes, meta-batch 2, one step per epoch, 2 val episodes, quiet CPU trainer."""
    return MetaTraining(
        n_way=3, n_shot=1, n_query=2, meta_batch_size=2, steps_per_epoch=1, val_episodes=2,
        trainer={"accelerator": "cpu", "enable_progress_bar": False, "log_every_n_steps": 1},
    )

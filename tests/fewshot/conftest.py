"""Small PBC blood-cell splits (32 px) and tiny meta-learners for the meta-learning tests."""

from functools import partial

import pytest

from medfew.data import ImageData, class_split, preprocess
from medfew.fewshot import MetaTraining
from medfew.models import create_backbone

IMAGE_SIZE = 32


@pytest.fixture(scope="session")
def tiny_conv4() -> partial:
    """Factory of an 8-channel Conv-4 for 3 x 32 x 32 images."""
    return partial(create_backbone, "conv4", in_chans=3, image_size=IMAGE_SIZE, model_kwargs={"hidden": 8})


@pytest.fixture(scope="session")
def pbc_split(bloodcells: ImageData) -> dict[str, ImageData]:
    """base (3 classes), val (2) and novel (3) PBC classes at 32 x 32 RGB."""
    split = class_split(
        bloodcells.class_names,
        base=["basophil", "erythroblast", "platelet"],
        val=["eosinophil", "ig"],
        novel=["lymphocyte", "monocyte", "neutrophil"],
    )
    return split.apply(preprocess(bloodcells, image_size=IMAGE_SIZE))


@pytest.fixture(scope="session")
def tiny_recipe() -> MetaTraining:
    """3-way 1-shot 2-query episodes, meta-batch 2, one step per epoch, 2 val episodes, quiet CPU trainer."""
    return MetaTraining(
        n_way=3, n_shot=1, n_query=2, meta_batch_size=2, steps_per_epoch=1, val_episodes=2,
        trainer={"accelerator": "cpu", "enable_progress_bar": False, "log_every_n_steps": 1},
    )

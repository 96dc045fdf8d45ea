"""``embed``: frozen features in eval mode, chunk by chunk, from uint8 or float images."""

import pytest
import torch

from medfew.models import create_backbone
from medfew.models.features import embed


def test_embed_is_eval_mode_chunked_and_restores_the_mode():
    torch.manual_seed(0)
    backbone = create_backbone("conv4", 1, 16, model_kwargs={"hidden": 8}).train()
    images = torch.randint(0, 256, (5, 1, 16, 16), dtype=torch.uint8)
    features = embed(backbone, images, batch_size=2)
    assert backbone.training and not features.requires_grad and features.shape == (5, backbone.num_features)
    with torch.no_grad():
        expected = backbone.eval()(images.float() / 255)  # one batch, eval mode (running statistics)
    torch.testing.assert_close(features, expected)
    torch.testing.assert_close(embed(backbone, images.float() / 255, batch_size=256), expected)
    with pytest.raises(ValueError, match="at least one image"):
        embed(backbone, images[:0])

"""Frozen features of many images: the one ``embed`` shared by the learners and the SSL monitor."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from medfew.data.episodes import to_float


@torch.no_grad()
def embed(backbone: nn.Module, images: Tensor, batch_size: int = 256) -> Tensor:
    """(N, C, H, W) images -> (N, D) float features, ``batch_size`` images per forward pass.

    The backbone runs in eval mode (then gets back the mode it had) without autograd; uint8
    images are scaled to [0, 1] chunk by chunk; chunks go to the backbone's device (to the
    images' own for a backbone without parameters) and the features stay there.
    """
    if len(images) == 0:
        raise ValueError("embed needs at least one image, got none")
    device = next(backbone.parameters(), images).device
    was_training = backbone.training
    backbone.eval()
    try:
        chunks = []
        for chunk in images.split(batch_size):
            chunk = chunk.to(device)
            chunks.append(backbone(to_float(chunk) if chunk.dtype == torch.uint8 else chunk).float())
    finally:
        backbone.train(was_training)
    return torch.cat(chunks)

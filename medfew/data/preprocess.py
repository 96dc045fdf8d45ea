"""Size and channel policy, applied once to the whole in-memory dataset."""

from dataclasses import replace

import torch
import torch.nn.functional as F
from kornia.color import rgb_to_grayscale

from medfew.data.dataset import ImageData


def resize_images(images: torch.Tensor, size: int | tuple[int, int], chunk: int = 1024) -> torch.Tensor:
    """Antialiased bilinear resize of uint8 (N, C, H, W) images to (N, C, size, size), or to (height, width) = ``size``."""
    shape = (size, size) if isinstance(size, int) else tuple(size)
    if images.shape[-2:] == shape:
        return images
    # filled chunk by chunk: no concatenated second copy, and the float copies freed after it leave no hole under it
    out = torch.empty((*images.shape[:2], *shape), dtype=torch.uint8)
    for part, target in zip(images.split(chunk), out.split(chunk)):
        resized = F.interpolate(part.float(), size=shape, mode="bilinear", antialias=True, align_corners=False)
        target.copy_(resized.round_().clamp_(0, 255))
    return out


def convert_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """Grey -> RGB by repetition, RGB -> grey by luminance (ITU-R 601 weights)."""
    if images.shape[1] == channels:
        return images
    if channels == 3:
        return images.expand(-1, 3, -1, -1).contiguous()
    if channels == 1:
        return rgb_to_grayscale(images.float()).round_().clamp_(0, 255).to(torch.uint8)
    raise ValueError(f"channels must be 1 or 3, got {channels}")


def preprocess(data: ImageData, image_size: int | None = None, channels: int | None = None) -> ImageData:
    """Resize to ``image_size`` and convert to ``channels``; None keeps what the source has."""
    images = data.images
    if image_size is not None:
        images = resize_images(images, image_size)
    if channels is not None:
        images = convert_channels(images, channels)
    return replace(data, images=images)

"""Seeded image corruptions at five severities, to measure robustness to image quality.

The families and their severity scales follow ImageNet-C (Hendrycks & Dietterich, "Benchmarking
Neural Network Robustness to Common Corruptions and Perturbations", ICLR 2019,
https://arxiv.org/abs/1903.12261), as MedMNIST-C does for medical images (Di Salvo et al. 2024,
https://arxiv.org/abs/2406.17536). Blur and pixelation are sized relative to the image side, so a
28 px and a 224 px image lose the same share of detail. Built on torch, kornia (blur) and Pillow
(JPEG); noise is drawn from a ``torch.Generator`` on the CPU, so a seed gives the same images on
any device.
"""

from __future__ import annotations

import io
import math

import numpy as np
import torch
import torch.nn.functional as F
from kornia.filters import gaussian_blur2d
from PIL import Image
from torch import Tensor

#: each corruption's parameter at severities 1..5
SEVERITIES: dict[str, tuple[float, ...]] = {
    "gaussian_noise": (0.08, 0.12, 0.18, 0.26, 0.38),  # std of added noise, intensities in [0, 1]
    "speckle": (0.15, 0.2, 0.35, 0.45, 0.6),  # std of multiplicative noise: x + x * n
    "blur": (0.015, 0.025, 0.035, 0.05, 0.07),  # Gaussian sigma as a share of the image side
    "contrast": (0.4, 0.3, 0.2, 0.1, 0.05),  # share of each image's contrast kept around its mean
    "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),  # added to every intensity
    "jpeg": (25, 18, 15, 10, 7),  # JPEG quality
    "pixelate": (0.6, 0.5, 0.4, 0.3, 0.25),  # share of the side kept before enlarging back
}
CORRUPTIONS = tuple(SEVERITIES)


def check_corruption(name: str, severity: int) -> None:
    """Raise naming the valid names or levels when ``name`` or ``severity`` is unknown."""
    if name not in SEVERITIES:
        raise ValueError(f"unknown corruption '{name}'; choose from {', '.join(CORRUPTIONS)}")
    if isinstance(severity, bool) or not isinstance(severity, int) or not 1 <= severity <= len(SEVERITIES[name]):
        raise ValueError(f"corruption severity must be an integer in 1..{len(SEVERITIES[name])}, got {severity!r}")


def parameter(name: str, severity: int) -> float:
    """The parameter of ``name`` at ``severity`` (see ``SEVERITIES``)."""
    check_corruption(name, severity)
    return SEVERITIES[name][severity - 1]


def corrupt(images: Tensor, name: str, severity: int, generator: torch.Generator | None = None) -> Tensor:
    """(N, C, H, W) float images in [0, 1] -> the same images corrupted by ``name`` at ``severity``
    (1 mild .. 5 severe), clipped to [0, 1]; noise draws from ``generator`` (on the CPU)."""
    value = parameter(name, severity)
    if name == "gaussian_noise":
        out = images + value * noise(images, generator)
    elif name == "speckle":
        out = images + images * value * noise(images, generator)
    elif name == "blur":
        out = blur(images, value * max(images.shape[-2:]))
    elif name == "contrast":
        mean = images.mean(dim=(1, 2, 3), keepdim=True)
        out = (images - mean) * value + mean
    elif name == "brightness":
        out = images + value
    elif name == "jpeg":
        out = compress(images, int(value))
    else:
        out = pixelate(images, value)
    return out.clamp(0, 1)


def noise(images: Tensor, generator: torch.Generator | None) -> Tensor:
    """Standard normal noise of ``images``' shape, drawn on the CPU and moved to their device."""
    return torch.randn(images.shape, generator=generator).to(images.device, images.dtype)


def blur(images: Tensor, sigma: float) -> Tensor:
    """Gaussian blur of width ``sigma`` pixels (kernel 2 * ceil(3 sigma) + 1, reflected borders)."""
    size = 2 * math.ceil(3 * sigma) + 1
    return gaussian_blur2d(images, (size, size), (sigma, sigma), border_type="reflect")


def compress(images: Tensor, quality: int) -> Tensor:
    """Images encoded and decoded as baseline JPEG at ``quality`` (Pillow's libjpeg, 4:2:0 chroma for RGB)."""
    pixels = (images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    decoded = []
    for image in pixels:
        buffer = io.BytesIO()
        Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buffer, format="JPEG", quality=quality)
        decoded.append(np.asarray(Image.open(buffer)).reshape(image.shape))
    return (torch.from_numpy(np.stack(decoded)).permute(0, 3, 1, 2).float() / 255).to(images.device, images.dtype)


def pixelate(images: Tensor, share: float) -> Tensor:
    """Images shrunk to ``share`` of their side by area averaging, enlarged back with nearest neighbours."""
    height, width = images.shape[-2:]
    small = F.interpolate(images, size=(max(1, round(height * share)), max(1, round(width * share))), mode="area")
    return F.interpolate(small, size=(height, width), mode="nearest")

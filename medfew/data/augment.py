"""Medical augmentation presets applied to whole batches, random parameters per image.

Every parameter is drawn per image in the batch (torchvision.transforms.v2 applied to a
batch tensor draws one set for the whole batch, which is wrong here). The steps are fused
into a few batch-wide kernels — one affine resampling for crop, rotation and flips, then
element-wise intensity changes, a separable blur and noise — so that augmenting a batch
costs little next to a training step, on CPU and GPU alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def medical_augment(
    image_size: int,
    crop_scale: Sequence[float] = (0.6, 1.0),
    rotation: float = 15.0,
    hflip: float = 0.5,
    vflip: float = 0.0,
    brightness: float = 0.2,
    contrast: float = 0.2,
    gamma: Sequence[float] = (0.8, 1.25),
    intensity_prob: float = 0.8,
    blur_prob: float = 0.2,
    blur_sigma: Sequence[float] = (0.1, 1.5),
    noise_std: float = 0.03,
    noise_prob: float = 0.2,
) -> nn.Module:
    """A batch augmentation for float (B, C, H, W) images in [0, 1] -> (B, C, image_size, image_size).

    Geometry: random resized crop (area fraction ``crop_scale``, aspect ratio 3/4..4/3),
    rotation by up to ``rotation`` degrees, flips. Intensity (no hue or saturation, so
    grey scans stay grey): additive brightness, multiplicative contrast and gamma, each
    with probability ``intensity_prob``; Gaussian blur (sigma in ``blur_sigma``) and
    Gaussian noise. A value of 0 turns a step off.
    """
    return MedicalAugment(
        image_size, tuple(crop_scale), rotation, hflip, vflip, brightness, contrast,
        tuple(gamma) if gamma else None, intensity_prob, blur_prob, tuple(blur_sigma), noise_std, noise_prob,
    )


class MedicalAugment(nn.Module):
    """The fused augmentation built by ``medical_augment`` (see there for the arguments)."""

    def __init__(
        self, image_size: int, crop_scale: tuple[float, float], rotation: float, hflip: float, vflip: float,
        brightness: float, contrast: float, gamma: tuple[float, float] | None, intensity_prob: float,
        blur_prob: float, blur_sigma: tuple[float, float], noise_std: float, noise_prob: float,
    ) -> None:
        super().__init__()
        self.image_size = image_size
        self.crop_scale = crop_scale
        self.rotation = math.radians(rotation)
        self.hflip, self.vflip = hflip, vflip
        self.brightness, self.contrast, self.gamma = brightness, contrast, gamma
        self.intensity_prob = intensity_prob
        self.blur_prob, self.blur_sigma = blur_prob, blur_sigma
        self.blur_kernel = max(3, (image_size // 16) | 1)
        self.noise_std, self.noise_prob = noise_std, noise_prob

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Augment ``x``; every random draw comes from ``generator`` (on x's device), else torch's global one."""
        x = self.geometry(x, generator)
        x = self.intensity(x, generator)
        if self.blur_prob:
            x = self.blur(x, generator)
        if self.noise_prob and self.noise_std:
            chosen = torch.nonzero(draw(len(x), x.device, generator=generator) < self.noise_prob).flatten()
            noise = torch.randn((len(chosen), *x.shape[1:]), device=x.device, dtype=x.dtype, generator=generator)
            x[chosen] += self.noise_std * noise
        return x.clamp_(0, 1)

    def geometry(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """One bilinear resampling: output pixel p reads input c + diag(w, h) R F p (normalised coords)."""
        n, device = len(x), x.device
        area = draw(n, device, *self.crop_scale, generator=generator)
        ratio = torch.exp(draw(n, device, math.log(3 / 4), math.log(4 / 3), generator=generator))
        w, h = (area * ratio).sqrt().clamp(max=1), (area / ratio).sqrt().clamp(max=1)
        cx, cy = (1 - w) * draw(n, device, -1, 1, generator=generator), (1 - h) * draw(n, device, -1, 1, generator=generator)
        angle = draw(n, device, -self.rotation, self.rotation, generator=generator)
        fx = 1 - 2 * (draw(n, device, generator=generator) < self.hflip).float()
        fy = 1 - 2 * (draw(n, device, generator=generator) < self.vflip).float()
        cos, sin = angle.cos(), angle.sin()
        theta = torch.stack(
            [torch.stack([w * cos * fx, -w * sin * fy, cx], 1), torch.stack([h * sin * fx, h * cos * fy, cy], 1)], 1
        )
        size = (n, x.shape[1], self.image_size, self.image_size)
        grid = F.affine_grid(theta.to(x.dtype), size, align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def intensity(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        n, device = len(x), x.device

        def factor(low: float, high: float, neutral: float) -> Tensor:
            chosen = draw(n, device, generator=generator) < self.intensity_prob
            return torch.where(chosen, draw(n, device, low, high, generator=generator), neutral).view(-1, 1, 1, 1)

        if self.brightness:
            x.add_(factor(-self.brightness, self.brightness, 0.0)).clamp_(0, 1)
        if self.contrast:
            x.mul_(factor(1 - self.contrast, 1 + self.contrast, 1.0)).clamp_(0, 1)
        if self.gamma and self.gamma != (1.0, 1.0):
            x.pow_(factor(*self.gamma, 1.0))
        return x

    def blur(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Separable Gaussian blur (reflect border) of the images drawn for it, sigma per image."""
        chosen = torch.nonzero(draw(len(x), x.device, generator=generator) < self.blur_prob).flatten()
        if len(chosen) == 0:
            return x
        sigma = draw(len(chosen), x.device, *self.blur_sigma, generator=generator).view(-1, 1)
        k, r = self.blur_kernel, self.blur_kernel // 2
        t = torch.arange(k, device=x.device, dtype=x.dtype) - r
        kernel = torch.exp(-(t**2) / (2 * sigma**2))
        kernel = (kernel / kernel.sum(1, keepdim=True)).view(-1, k, 1, 1, 1)  # (m, k, 1, 1, 1)
        part = x[chosen]
        h, w = part.shape[-2:]
        padded = F.pad(part, (r, r, 0, 0), mode="reflect")
        part = sum(kernel[:, j] * padded[..., j : j + w] for j in range(k))
        padded = F.pad(part, (0, 0, r, r), mode="reflect")
        x[chosen] = sum(kernel[:, j] * padded[..., j : j + h, :] for j in range(k))
        return x


def draw(n: int, device: torch.device, low: float = 0.0, high: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
    """``n`` uniform numbers in [low, high) on ``device``, from ``generator`` (None: torch's global one)."""
    return low + (high - low) * torch.rand(n, device=device, generator=generator)

"""Medical augmentation presets applied to whole batches, random parameters per image.

kornia draws every parameter per image in the batch (torchvision.transforms.v2 applied
to a batch tensor draws one set for the whole batch, which is wrong here).
"""

from collections.abc import Sequence

import kornia.augmentation as K
from torch import nn


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
    """A batch augmentation for float (B, C, H, W) images in [0, 1].

    Geometry: random resized crop (scale ``crop_scale``), rotation by up to ``rotation``
    degrees, flips. Intensity (no hue or saturation, so grey scans stay grey):
    brightness, contrast and gamma, Gaussian blur and Gaussian noise. A value of 0 turns
    a step off.
    """
    steps: list[nn.Module] = [K.RandomResizedCrop((image_size, image_size), scale=tuple(crop_scale))]
    if rotation:
        steps.append(K.RandomRotation(degrees=rotation, p=1.0))
    if hflip:
        steps.append(K.RandomHorizontalFlip(p=hflip))
    if vflip:
        steps.append(K.RandomVerticalFlip(p=vflip))
    if brightness:
        steps.append(K.RandomBrightness(brightness=(1 - brightness, 1 + brightness), p=intensity_prob))
    if contrast:
        steps.append(K.RandomContrast(contrast=(1 - contrast, 1 + contrast), p=intensity_prob))
    if gamma and tuple(gamma) != (1.0, 1.0):
        steps.append(K.RandomGamma(gamma=tuple(gamma), p=intensity_prob))
    if blur_prob:
        kernel = max(3, (image_size // 16) | 1)
        steps.append(K.RandomGaussianBlur((kernel, kernel), sigma=tuple(blur_sigma), p=blur_prob))
    if noise_prob and noise_std:
        steps.append(K.RandomGaussianNoise(std=noise_std, p=noise_prob))
    return nn.Sequential(*steps, Clamp())


class Clamp(nn.Module):
    """Keep augmented intensities in [0, 1]."""

    def forward(self, x):
        return x.clamp(0, 1)

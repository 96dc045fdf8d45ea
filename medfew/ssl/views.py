"""Views of a whole uint8 batch, made on the batch's device in one go.

No per-image PIL transforms and no DataLoader workers: the pool stays in memory (on the
GPU when there is one), a step gathers its uint8 batch, converts it to float once and
runs the kornia augmentation (random parameters per image) once per view.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import kornia.augmentation as K
import torch
from torch import Tensor, nn

from medfew.data import to_float
from medfew.data.augment import medical_augment
from medfew.ssl.base import ViewSpec

Augment = Mapping[str, Any] | Callable[[Tensor], Tensor]


def build_augment(augment: Augment | None, image_size: int) -> Callable[[Tensor], Tensor]:
    """A batch augmentation from medical_augment keyword arguments (None: its defaults), or
    ``augment`` itself when it is already one (e.g. an instantiated augment preset)."""
    if augment is None or isinstance(augment, Mapping):
        kwargs = {k: v for k, v in dict(augment or {}).items() if not k.startswith("_")}
        return medical_augment(**{"image_size": image_size, **kwargs})
    if callable(augment):
        return augment
    raise TypeError(f"augment must be a dict of medical_augment arguments or a callable, got {type(augment).__name__}")


class Views(nn.Module):
    """uint8 (B, C, H, W) -> ``n_global`` + ``n_local`` float views (B, C, H, W) in [0, 1].

    Global views are ``augment`` of the batch; a local view (multi-crop, Caron et al. 2020,
    https://arxiv.org/abs/2006.09882) is a further random crop covering ``local_scale`` of
    an augmented view, resized back to (H, W).
    """

    def __init__(self, augment: Callable[[Tensor], Tensor], spec: ViewSpec, image_size: int) -> None:
        super().__init__()
        self.augment = augment
        self.spec = spec
        self.local_crop = K.RandomResizedCrop((image_size, image_size), scale=tuple(spec.local_scale))

    def forward(self, images: Tensor) -> list[Tensor]:
        x = to_float(images)
        n_global, n_local = self.spec.n_global, self.spec.n_local
        # one augmentation call over every copy (parameters are drawn per image, so the
        # copies differ): a few large kernels instead of many small ones
        views = self.augment(x.repeat(n_global + n_local, 1, 1, 1)).chunk(n_global + n_local)
        local = self.local_crop(torch.cat(views[n_global:])).chunk(n_local) if n_local else ()
        return [*views[:n_global], *local]

"""Backbones: timm networks or Conv-4 as feature extractors, with safe weight loading.

A backbone takes float (B, C, H, W) images in [0, 1], normalises them itself and returns
(B, num_features) features. ``save_backbone`` writes a safetensors file whose metadata
holds the spec needed to rebuild it, so every learner loads an export by path alone.
``stem="cifar"`` gives any timm ResNet the CIFAR stem for 28-32 px images.
"""

from __future__ import annotations

import difflib
import json
import os
import warnings
from pathlib import Path
from typing import Any

import timm
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from medfew.models.conv4 import Conv4

SPEC_KEY = "medfew_backbone"
LOCAL_NETWORKS = {"conv4": Conv4}
STEMS = (None, "cifar")
PROBE_ERRORS = (RuntimeError, AssertionError)  # torch: too small for the pooling; timm: a size the model is fixed to


class Backbone(nn.Module):
    """Normalising wrapper: ``net((x - mean) / std)`` with ``num_features`` outputs."""

    def __init__(self, net: nn.Module, spec: dict[str, Any], mean: float = 0.5, std: float = 0.5) -> None:
        super().__init__()
        self.net = net
        self.spec = spec
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)
        try:
            self.num_features = int(probe(net, spec["in_chans"], spec["image_size"]).shape[-1])
        except PROBE_ERRORS as error:
            raise ValueError(f"backbone '{spec['name']}' cannot take {spec['in_chans']} x {spec['image_size']} x "
                             f"{spec['image_size']} images ({first_line(error)}); {size_hint(net, spec)}") from None

    def forward(self, x: Tensor) -> Tensor:
        return self.net((x - self.mean) / self.std)


@torch.no_grad()
def probe(net: nn.Module, in_chans: int, size: int) -> Tensor:
    """Features of one blank image of ``size`` x ``size`` (eval mode, then the mode it had)."""
    was_training = net.training
    net.eval()
    try:
        return net(torch.zeros(1, in_chans, size, size))
    finally:
        net.train(was_training)


def smallest_size(net: nn.Module, in_chans: int, start: int, limit: int = 1024) -> int | None:
    """The smallest image size above ``start`` that ``net`` takes (None: none up to ``limit``),
    found by doubling, then bisection (networks that take a size take every larger one)."""

    def fits(size: int) -> bool:
        try:
            probe(net, in_chans, size)
        except PROBE_ERRORS:
            return False
        return True

    low, high = max(start, 0), max(start, 1) * 2
    while not fits(high):
        if high >= limit:
            return None
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if fits(middle) else (middle, high)
    return high


def size_hint(net: nn.Module, spec: dict[str, Any]) -> str:
    size = smallest_size(net, spec["in_chans"], spec["image_size"])
    if size is None:
        return "set data.image_size to a size it takes (a ViT takes only its img_size: backbone.model_kwargs.img_size)"
    return f"the smallest size it takes is {size}: set data.image_size={size} or more, or pick another backbone"


def first_line(error: Exception) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0]


def build_network(name: str, in_chans: int, model_kwargs: dict[str, Any], stem: str | None = None) -> nn.Module:
    if name in LOCAL_NETWORKS:
        net = LOCAL_NETWORKS[name](in_chans=in_chans, **model_kwargs)
    elif timm.is_model(name):
        net = timm.create_model(name, pretrained=False, num_classes=0, in_chans=in_chans, **model_kwargs)
    else:
        close = difflib.get_close_matches(name, list(LOCAL_NETWORKS) + timm.list_models(), n=8)
        raise KeyError(
            f"unknown backbone '{name}'. Close names: {', '.join(close) or 'none'}; "
            f"valid names are {', '.join(LOCAL_NETWORKS)} and every timm.list_models() name"
        )
    return net if stem is None else cifar_stem(net, name, in_chans)


def cifar_stem(net: nn.Module, name: str, in_chans: int) -> nn.Module:
    """Replace a timm ResNet's stem (conv1 stride 2 + max-pool: /4) by one 3x3 stride-1 conv (/1).

    The CIFAR ResNet of He et al., "Deep Residual Learning for Image Recognition", CVPR 2016,
    https://arxiv.org/abs/1512.03385, as in MedMNIST v2's 28 px baselines: a 28 px input
    reaches the last stage at 4x4 instead of 1x1. The new conv gets timm's ResNet init.
    """
    if not isinstance(net, timm.models.ResNet):
        raise TypeError(f"stem='cifar' needs a timm ResNet, but '{name}' is a {type(net).__name__}")
    net.conv1 = nn.Conv2d(in_chans, net.bn1.num_features, kernel_size=3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
    net.maxpool = nn.Identity()
    return net


def create_backbone(
    name: str,
    in_chans: int = 1,
    image_size: int = 64,
    pretrained: str | os.PathLike | None = None,
    model_kwargs: dict[str, Any] | None = None,
    stem: str | None = None,
) -> Backbone:
    """Build a backbone by name (``conv4`` or any timm model name).

    Args:
        name: network name.
        in_chans: input channels (1 for grey scans, 3 for RGB).
        image_size: input side length; a dry run at this size sets ``num_features``.
        pretrained: None for random init; ``"timm"`` for timm's hub weights (needs
            network); or a local file: a medfew export, or a timm / torch state dict
            (safetensors, or a torch checkpoint read with ``weights_only=True``).
        model_kwargs: extra keyword arguments for the network (e.g. ``img_size`` for ViT).
        stem: None keeps the network's stem; ``"cifar"`` (timm ResNets only, see ``cifar_stem``)
            swaps it for a 3x3 stride-1 conv. ImageNet weights (hub or file) then fill every
            layer but that conv, which stays randomly initialised (with a warning).
    """
    if stem not in STEMS:
        raise ValueError(f"unknown stem {stem!r} for backbone '{name}'; valid stems are {', '.join(map(repr, STEMS))}")
    model_kwargs = dict(model_kwargs or {})
    spec = {"name": name, "in_chans": in_chans, "image_size": image_size, "model_kwargs": model_kwargs}
    if stem is not None:  # recorded only when set: specs written before stems existed stay valid
        spec["stem"] = stem
    if pretrained == "timm":
        return hub_backbone(spec)
    net = build_network(name, in_chans, model_kwargs, stem)
    if pretrained is None:
        return Backbone(net, spec)
    path = Path(pretrained)
    saved = read_spec(path)
    if saved is not None and saved["name"] != name:
        raise ValueError(f"{path} holds a '{saved['name']}' backbone, but the config asks for '{name}'")
    if saved is not None and saved.get("stem") != stem:
        raise ValueError(f"{path} holds a '{name}' backbone with stem {saved.get('stem')!r}, but the config asks for stem {stem!r}")
    state = read_state_dict(path)
    if stem is not None:
        state = drop_unfit_stem(net, state, path)
    load_weights(net, state, path)
    mean, std = (saved.get("mean", 0.5), saved.get("std", 0.5)) if saved else imagenet_stats(net, in_chans)
    return Backbone(net, spec | {"mean": mean, "std": std}, mean=mean, std=std)


def hub_backbone(spec: dict[str, Any]) -> Backbone:
    try:
        net = timm.create_model(
            spec["name"], pretrained=True, num_classes=0, in_chans=spec["in_chans"], **spec["model_kwargs"]
        )
    except Exception as error:  # timm raises many kinds of errors when offline
        raise RuntimeError(
            f"could not fetch timm's pretrained weights for '{spec['name']}' ({type(error).__name__}: {error}). "
            "Offline? Download the weights elsewhere and set backbone.pretrained=/path/to/weights.safetensors"
        ) from error
    if "stem" in spec:
        net = cifar_stem(net, spec["name"], spec["in_chans"])
        warnings.warn(f"backbone '{spec['name']}' with stem 'cifar': timm's weights fill every layer but conv1, randomly initialised")
    mean, std = imagenet_stats(net, spec["in_chans"])
    return Backbone(net, spec | {"mean": mean, "std": std}, mean=mean, std=std)


def imagenet_stats(net: nn.Module, in_chans: int) -> tuple[list[float], list[float]]:
    """The normalisation that came with a network's pretrained weights, per input channel."""
    cfg = getattr(net, "pretrained_cfg", {}) or {}
    mean, std = list(cfg.get("mean", [0.5] * 3)), list(cfg.get("std", [0.5] * 3))
    if in_chans == 1:
        return [sum(mean) / len(mean)], [sum(std) / len(std)]
    return mean[:in_chans], std[:in_chans]


def read_spec(path: Path) -> dict[str, Any] | None:
    """The medfew spec stored in a safetensors export, or None for other files."""
    if path.suffix != ".safetensors" or not path.exists():
        return None
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    return json.loads(meta[SPEC_KEY]) if SPEC_KEY in meta else None


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """Tensors from safetensors, or from a torch file with ``weights_only=True``."""
    if not path.exists():
        raise FileNotFoundError(f"weights file {path} not found")
    if path.suffix == ".safetensors":
        return load_file(str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(
            f"refusing to load {path}: it is not a plain tensor checkpoint "
            f"(weights_only=True loading failed: {error})"
        ) from error
    return state.get("state_dict", state) if isinstance(state, dict) else state


def drop_unfit_stem(net: nn.Module, state: dict[str, Tensor], path: Path) -> dict[str, Tensor]:
    """``state`` with ``net``'s own (random) tensors for the stem tensors (``conv1.*``, ``maxpool.*``)
    that do not fit its CIFAR stem, with a warning; a stem that fits (a CIFAR-stem checkpoint) is kept."""
    wanted = net.state_dict()
    unfit = [
        k for k, v in state.items() if k.startswith(("conv1.", "maxpool.")) and (k not in wanted or wanted[k].shape != v.shape)
    ]
    if not unfit:
        return state
    warnings.warn(f"{path}: stem 'cifar' re-initialises conv1; dropped {', '.join(unfit)} from the checkpoint")
    kept = {k: v for k, v in state.items() if k not in unfit}
    return kept | {k: v for k, v in wanted.items() if k.startswith("conv1.") and k not in kept}


def load_weights(net: nn.Module, state: dict[str, Tensor], path: Path) -> None:
    """Load ``state`` into ``net``: adapt an RGB first conv to other channel counts, drop classifier keys."""
    cfg = getattr(net, "pretrained_cfg", {}) or {}
    first_conv = cfg.get("first_conv")
    if first_conv and f"{first_conv}.weight" in state:
        key = f"{first_conv}.weight"
        wanted = net.state_dict()[key].shape[1]
        if state[key].shape[1] != wanted:
            state[key] = timm.models.adapt_input_conv(wanted, state[key])
    classifier = cfg.get("classifier")
    if classifier:
        state = {k: v for k, v in state.items() if not k.startswith(f"{classifier}.")}
    try:
        net.load_state_dict(state)
    except RuntimeError as error:
        detail = " ".join(str(error).splitlines()[:2])
        raise ValueError(
            f"{path} does not fit this {type(net).__name__} network (checkpoint from another architecture?): {detail}"
        ) from error


@torch.no_grad()
def open_residual_branches(backbone: nn.Module) -> int:
    """Undo timm's zero-initialised residual branches: set to one every all-zero BatchNorm weight of a
    block with ``zero_init_last`` (timm's ResNet family); return how many were set.

    timm starts each branch at zero (Goyal et al. 2017, good for supervised training from scratch);
    torchvision, and lightly's SSL examples, start them at one. With zero branches and the ImageNet
    stem at 28 px a random ResNet-18 sees a few pixels only (kNN 0.100 against 0.520 on PBC, BENCHMARKS.md,
    "SSL on small pools"), which leaves bootstrap SSL methods nothing to start from. Trained weights are never all zero,
    so a pretrained backbone is left as it is.
    """
    norms = [
        norm for block in backbone.modules() if hasattr(block, "zero_init_last")
        for norm in block.modules() if isinstance(norm, nn.modules.batchnorm._BatchNorm) and norm.weight is not None
    ]
    opened = [norm for norm in norms if not norm.weight.any()]
    for norm in opened:
        norm.weight.fill_(1.0)
    return len(opened)


def save_backbone(backbone: Backbone, path: str | os.PathLike) -> Path:
    """Write the backbone's weights and spec to one safetensors file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in backbone.net.state_dict().items()}
    spec = backbone.spec | {"mean": backbone.mean.flatten().tolist(), "std": backbone.std.flatten().tolist()}
    save_file(state, str(path), metadata={SPEC_KEY: json.dumps(spec)})
    return path


def load_backbone(path: str | os.PathLike) -> Backbone:
    """Rebuild a backbone written by ``save_backbone``."""
    path = Path(path)
    spec = read_spec(path)
    if spec is None:
        raise ValueError(f"{path} is not a medfew backbone export (no '{SPEC_KEY}' metadata)")
    return create_backbone(
        spec["name"], spec["in_chans"], spec["image_size"], pretrained=path, model_kwargs=spec["model_kwargs"], stem=spec.get("stem")
    )

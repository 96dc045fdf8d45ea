"""A model bundle: one trained learner and its adapted state, ready for new images.

``<folder>/weights.safetensors`` holds the tensors: ``learner.*`` (the learner's modules) and
``state.*`` (its adapted state, ``medfew.deploy.states``). ``<folder>/bundle.json`` holds the rest:
the learner's name and resolved config, the state's description, the class names, the
preprocessing (image size, channels, bits of 16-bit files, the pixel scaling and each backbone's
normalisation), the fingerprint of the training images and the medfew version.

Reading runs no code from the files: the weights are safetensors (a pickle is refused, never
opened by torch) and the rest JSON; the learner is rebuilt from its config, whose every
``_target_`` must lie inside medfew, with its training stages off and no pretrained weights
fetched, and the weights are then loaded into it.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import Tensor, nn

from medfew import __version__
from medfew.deploy.states import move_state, pack_state, unpack_state
from medfew.files import write_atomic, write_json
from medfew.learners.base import Learner
from medfew.models import Backbone

FORMAT = "medfew model bundle"
VERSION = 1
WEIGHTS = "weights.safetensors"
INFO = "bundle.json"
TRUSTED = "medfew."  # the only code a bundle's config may name
STAGES_OFF = {"pretrain": None, "base_training": None, "meta_train_steps": 0}  # trained already: their result is in the weights
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin", ".joblib")
PIXELS = "uint8 / 255: float in [0, 1]; each backbone then normalises (x - mean) / std"


@dataclass(frozen=True)
class Preprocessing:
    """What a new image goes through before the learner sees it: resized to ``height`` x ``width``,
    converted to ``channels`` (1 grey, 3 RGB), 16-bit files read as ``bits`` bits, scaled to [0, 1];
    ``backbones``: each backbone's own normalisation (module path -> mean, std)."""

    height: int
    width: int
    channels: int
    bits: int = 16
    pixels: str = PIXELS
    backbones: dict[str, dict[str, list[float]]] | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.channels, self.height, self.width


@dataclass(frozen=True)
class Bundle:
    """A rebuilt learner, its adapted state, the class names and the preprocessing; ``info``: all of bundle.json."""

    learner: Learner
    state: Any
    class_names: tuple[str, ...]
    preprocessing: Preprocessing
    info: dict[str, Any]

    @torch.inference_mode()
    def predict(self, images: Tensor) -> Tensor:
        """(N, n_classes) probabilities of (N, C, H, W) float images in [0, 1], already preprocessed."""
        return self.learner.predict(self.state, images)

    def to(self, device: torch.device | str) -> Bundle:
        device = torch.device(device)
        return Bundle(self.learner.to(device), move_state(self.state, device), self.class_names, self.preprocessing, self.info)


def backbone_norms(learner: Learner) -> dict[str, dict[str, Any]]:
    """Spec, mean and std of every backbone of ``learner`` by module path (mean and std are not in its state dict)."""
    return {
        path: {"spec": {k: v for k, v in module.spec.items() if k not in ("mean", "std")},
               "mean": module.mean.flatten().tolist(), "std": module.std.flatten().tolist()}
        for path, module in learner.named_modules() if isinstance(module, Backbone)
    }  # fmt: skip


def save_bundle(
    folder: str | os.PathLike,
    learner: Learner,
    state: Any,
    name: str,
    config: dict[str, Any],
    class_names: tuple[str, ...],
    preprocessing: Preprocessing,
    data: dict[str, Any],
) -> Path:
    """Write ``learner`` (built from ``config``, the learner's resolved config) and its adapted ``state`` to ``folder``.

    ``data``: what the training images were (fingerprint, count, part). A config naming code outside
    medfew is refused now, as reading would refuse it.
    """
    check_trusted(config)
    folder = Path(folder)
    state_tensors, state_description = pack_state(state)
    tensors = {f"learner.{k}": v for k, v in learner.state_dict().items()} | {f"state.{k}": v for k, v in state_tensors.items()}
    tensors = {key: value.detach().cpu().contiguous().clone() for key, value in tensors.items()}  # safetensors refuses shared memory
    preprocessing = Preprocessing(**{**asdict(preprocessing), "backbones": backbone_norms(learner)})
    info = {
        "format": FORMAT,
        "version": VERSION,
        "medfew_version": __version__,
        "learner": name,
        "config": config,
        "class_names": list(class_names),
        "preprocessing": asdict(preprocessing),
        "state": state_description,
        "data": data,
    }
    write_atomic(folder / WEIGHTS, lambda temporary: temporary.write_bytes(save(tensors, metadata={"format": FORMAT})))
    write_json(folder / INFO, info)
    return folder


def check_trusted(config: Any, where: str = "config") -> None:
    """Refuse a config that names code outside medfew (``_target_``), naming the key and the value."""
    if isinstance(config, dict):
        target = config.get("_target_")
        if target is not None and not (isinstance(target, str) and target.startswith(TRUSTED)):
            raise ValueError(f"bundle {where}._target_ = {target!r}: a model bundle may only name medfew code ({TRUSTED}*); refused")
        for key, value in config.items():
            check_trusted(value, f"{where}.{key}")
    elif isinstance(config, list):
        for index, value in enumerate(config):
            check_trusted(value, f"{where}[{index}]")


def without_stages(config: Any) -> Any:
    """A copy of a learner config with its training stages off and every backbone built without pretrained weights."""
    if isinstance(config, list):
        return [without_stages(value) for value in config]
    if not isinstance(config, dict):
        return config
    config = {key: without_stages(value) for key, value in config.items()}
    if "_target_" in config:
        config |= {key: off for key, off in STAGES_OFF.items() if key in config}
    if config.get("_target_") == "medfew.models.create_backbone":
        config["pretrained"] = None
    return config


def read_info(folder: Path) -> dict[str, Any]:
    """bundle.json of ``folder``, checked to be a medfew bundle of a version this medfew reads."""
    if folder.is_file() or not folder.exists():
        what = "a pickle, never loaded" if folder.suffix in PICKLE_SUFFIXES else "not a bundle folder"
        found = "not found" if not folder.exists() else what
        raise ValueError(f"model={folder}: {found}; give the bundle folder `medfew fit` wrote (<run>/model)")
    path = folder / INFO
    if not path.is_file():
        files = ", ".join(sorted(p.name for p in folder.iterdir())[:8]) or "nothing"
        raise ValueError(f"{folder} is not a medfew model bundle: no {INFO} in it (it holds {files})")
    try:
        info = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not JSON ({error}); refused") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise ValueError(f"{path} is not a medfew model bundle (format {info.get('format') if isinstance(info, dict) else None!r})")
    if info.get("version") != VERSION:
        raise ValueError(f"{path} is bundle version {info.get('version')}; this medfew ({__version__}) reads version {VERSION}")
    return info


def read_weights(path: Path) -> dict[str, Tensor]:
    """The tensors of a safetensors file; anything else (a pickle included) is refused unread."""
    if not path.is_file():
        raise ValueError(f"{path} not found: a model bundle keeps its weights there, as safetensors")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise ValueError(
            f"{path} is not a safetensors file ({error}); refused: medfew reads bundle weights as safetensors only and never unpickles"
        ) from None


def rebuild_learner(info: dict[str, Any]) -> Learner:
    """The learner of the bundle's config, untrained (stages off, no pretrained weights fetched)."""
    check_trusted(info["config"])
    torch.manual_seed(0)  # the initial weights are replaced by the bundle's
    learner = instantiate(copy.deepcopy(without_stages(info["config"])))
    if not isinstance(learner, Learner):
        raise ValueError(f"the bundle's config builds a {type(learner).__name__}, not a medfew Learner")
    return learner


def restore_backbones(learner: Learner, saved: dict[str, dict[str, Any]]) -> None:
    """Give each backbone the normalisation it was trained with; a backbone missing or of another spec is an error."""
    built = dict(learner.named_modules())
    for path, record in saved.items():
        module = built.get(path)
        spec = getattr(module, "spec", None)
        own = {k: v for k, v in (spec or {}).items() if k not in ("mean", "std")}
        if not isinstance(module, Backbone) or json.loads(json.dumps(own)) != record["spec"]:
            raise ValueError(f"the bundle's backbone at '{path}' is {record['spec']}; its config builds {own or 'none there'}")
        module.mean = torch.tensor(record["mean"]).view(1, -1, 1, 1)
        module.std = torch.tensor(record["std"]).view(1, -1, 1, 1)


def load_bundle(folder: str | os.PathLike) -> Bundle:
    """Read a bundle written by ``save_bundle`` (see the module for what is refused)."""
    folder = Path(folder)
    info = read_info(folder)
    tensors = read_weights(folder / WEIGHTS)
    learner = rebuild_learner(info)
    own = {key.split(".", 1)[1]: value for key, value in tensors.items() if key.startswith("learner.")}
    try:
        learner.load_state_dict(own, strict=True)
    except RuntimeError as error:
        raise ValueError(f"{folder / WEIGHTS} does not fit the learner of its config: {' '.join(str(error).splitlines()[:2])}") from None
    preprocessing = Preprocessing(**info["preprocessing"])
    restore_backbones(learner, preprocessing.backbones or {})
    learner.eval()
    state_tensors = {key.split(".", 1)[1]: value for key, value in tensors.items() if key.startswith("state.")}
    try:
        state = unpack_state(learner, state_tensors, info["state"], preprocessing.shape)
    except KeyError as error:
        raise ValueError(f"{folder / WEIGHTS} lacks the tensor {error} of its {info['state'].get('kind')} state: it does not fit {INFO}") from None
    for network in (learner, state):
        if isinstance(network, nn.Module):  # NHWC convolution weights: oneDNN and cuDNN run them faster
            network.to(memory_format=torch.channels_last)
    return Bundle(learner, state, tuple(info["class_names"]), preprocessing, info)

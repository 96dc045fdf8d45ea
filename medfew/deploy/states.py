"""Adapted states as tensors plus a JSON description, and back, for every learner kind.

``pack_state`` turns what a learner's ``adapt`` returned into named tensors and a description
whose ``kind`` says how to rebuild it; ``unpack_state`` rebuilds it around a learner of the same
config whose weights are already loaded. Kinds:

- ``tensor``: ProtoNet's (n_way, D) prototypes;
- ``centroids``: the nearest-centroid learner's ``Centroids`` (prototypes and centre);
- ``tensors``: a tuple of tensors (Matching Networks' support embeddings and one-hot labels);
- ``pipeline``: a fitted scikit-learn pipeline (``medfew.deploy.estimators``);
- ``network``: fine-tuning's backbone + head, rebuilt by the learner's ``new_head``;
- ``adapted_network``: the MAML family's adapted clone, rebuilt by cloning the learner's wrapper;
- ``members``: an ensemble's states by member name, each packed as its member's.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from sklearn.pipeline import Pipeline
from torch import Tensor, nn

from medfew.deploy.estimators import pack_pipeline, unpack_pipeline
from medfew.learners.base import Learner
from medfew.learners.finetune import FineTune
from medfew.learners.prototype import Centroids


def pack_state(state: Any) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """(tensors, description) of an adapted state; a state of another type is an error naming it."""
    if isinstance(state, Tensor):
        return {"value": state}, {"kind": "tensor"}
    if isinstance(state, Centroids):
        return {"prototypes": state.prototypes, "centre": state.centre}, {"kind": "centroids"}
    if isinstance(state, tuple) and all(isinstance(part, Tensor) for part in state):
        return {str(i): part for i, part in enumerate(state)}, {"kind": "tensors", "length": len(state)}
    if isinstance(state, Pipeline):
        tensors, description = pack_pipeline(state)
        return tensors, {"kind": "pipeline", **description}
    if is_adapted_network(state):
        return state.network.state_dict(), {"kind": "adapted_network", "n_way": state.n_way}
    if isinstance(state, nn.Module):
        return state.state_dict(), {"kind": "network", "n_way": output_size(state)}
    if isinstance(state, dict) and all(isinstance(key, str) and "." not in key for key in state):
        tensors, members = {}, {}
        for name, member in state.items():
            own, members[name] = pack_state(member)
            tensors |= {f"{name}.{key}": value for key, value in own.items()}
        return tensors, {"kind": "members", "members": members}
    raise TypeError(f"a model bundle cannot store an adapted state of type {type(state).__name__}")


def unpack_state(learner: Learner, tensors: dict[str, Tensor], description: dict[str, Any], image_shape: tuple[int, ...]) -> Any:
    """The state ``pack_state`` described, rebuilt for ``learner`` (weights loaded); ``image_shape``: (C, H, W)."""
    kind = description.get("kind")
    if kind == "tensor":
        return tensors["value"]
    if kind == "centroids":
        return Centroids(tensors["prototypes"], tensors["centre"])
    if kind == "tensors":
        return tuple(tensors[str(i)] for i in range(description["length"]))
    if kind == "pipeline":
        return unpack_pipeline(tensors, description)
    if kind == "network":
        network = blank_network(learner, description["n_way"], image_shape)
        load(network, tensors, "the fine-tuned network")
        return network
    if kind == "adapted_network":
        return adapted_network(learner, tensors, description["n_way"])
    if kind == "members":
        members = getattr(learner, "members", None)
        if members is None or set(members) != set(description["members"]):
            raise ValueError(f"the bundle's state has members {sorted(description['members'])}, the learner {sorted(members or [])}")
        return {
            name: unpack_state(members[name], {k.split(".", 1)[1]: v for k, v in tensors.items() if k.split(".", 1)[0] == name}, own, image_shape)
            for name, own in description["members"].items()
        }  # fmt: skip
    raise ValueError(f"unknown state kind {kind!r} in the bundle")


def is_adapted_network(state: Any) -> bool:
    """Whether ``state`` is a MAML-family ``AdaptedNetwork`` (without importing learn2learn for other learners)."""
    return type(state).__name__ == "AdaptedNetwork" and type(state).__module__ == "medfew.fewshot.gbml"


def output_size(network: nn.Module) -> int:
    """n_way of a fine-tuned network: the outputs of its last layer with weights."""
    last = [module for module in network.modules() if isinstance(getattr(module, "weight", None), Tensor)][-1]
    return int(last.weight.shape[0])


def blank_network(learner: Learner, n_way: int, image_shape: tuple[int, ...]) -> nn.Sequential:
    """Fine-tuning's backbone + a fresh head of ``n_way`` outputs, the shapes its adapted network has."""
    if not isinstance(learner, FineTune):
        raise ValueError(f"a fine-tuned network state needs a FineTune learner, the bundle's config builds a {type(learner).__name__}")
    images = torch.zeros(n_way, *image_shape)
    head = learner.new_head(images, torch.arange(n_way), n_way)
    return nn.Sequential(copy.deepcopy(learner.require_backbone()), head).eval()


def adapted_network(learner: Learner, tensors: dict[str, Tensor], n_way: int) -> Any:
    """A MAML-family learner's adapted network: a detached clone of its wrapper with the stored weights."""
    from learn2learn.utils import detach_module

    from medfew.fewshot.gbml import AdaptedNetwork, GradientMetaLearner

    if not isinstance(learner, GradientMetaLearner):
        raise ValueError(f"an adapted-network state needs a MAML-family learner, the bundle's config builds a {type(learner).__name__}")
    clone = learner.adaptive.clone()
    detach_module(clone)
    network = nn.Sequential(learner.body, clone)
    load(network, tensors, "the adapted network")
    return AdaptedNetwork(network, n_way)


def load(network: nn.Module, tensors: dict[str, Tensor], what: str) -> None:
    try:
        network.load_state_dict(tensors, strict=True)
    except RuntimeError as error:
        raise ValueError(f"the bundle's weights do not fit {what}: {' '.join(str(error).splitlines()[:2])}") from None


def move_state(state: Any, device: torch.device) -> Any:
    """``state`` with its tensors and networks on ``device`` (a scikit-learn pipeline stays where it is)."""
    if isinstance(state, Tensor | nn.Module):
        return state.to(device)
    if isinstance(state, Centroids):
        return Centroids(state.prototypes.to(device), state.centre.to(device))
    if isinstance(state, tuple):
        return tuple(move_state(part, device) for part in state)
    if isinstance(state, dict):
        return {name: move_state(member, device) for name, member in state.items()}
    if is_adapted_network(state):
        return type(state)(state.network.to(device), state.n_way)
    return state

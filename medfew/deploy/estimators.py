"""Fitted scikit-learn pipelines as tensors and JSON, and back, without pickle.

A pipeline of the estimators in ``ESTIMATORS`` is written as each step's class name and constructor
parameters (JSON) and its fitted arrays (tensors); reading builds every step from that list of
classes only, so a file can name no other code. k-nearest neighbours keeps its training features
and labels and is refitted on them: fitting only stores them, so the estimator is the same.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import Tensor

ESTIMATORS = {cls.__name__: cls for cls in (StandardScaler, LogisticRegression, KNeighborsClassifier)}
SCALARS = (bool, int, float, str, type(None))


def as_tensor(array: np.ndarray, where: str) -> Tensor:
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{where}: a {array.dtype} array cannot be stored as a tensor")
    return torch.from_numpy(np.ascontiguousarray(array)).clone()


def pack_estimator(estimator: Any, where: str) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """(tensors, JSON) of one fitted estimator: its fitted arrays, or k-NN's features and labels."""
    if isinstance(estimator, KNeighborsClassifier):
        labels = estimator.classes_[estimator._y]
        return {"features": as_tensor(estimator._fit_X, where), "labels": as_tensor(labels, where)}, {}
    tensors, fitted = {}, {}
    for key, value in vars(estimator).items():
        if not key.endswith("_") or key.startswith("_"):
            continue
        if isinstance(value, np.ndarray):
            tensors[key] = as_tensor(value, f"{where}.{key}")
        elif isinstance(value, (np.generic, *SCALARS)):
            fitted[key] = value.item() if isinstance(value, np.generic) else value
        else:
            raise TypeError(f"{where}.{key}: a fitted {type(value).__name__} cannot be stored as tensors or JSON")
    return tensors, fitted


def pack_pipeline(pipeline: Pipeline) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """A fitted pipeline as (tensors named '<step>.<attribute>', JSON list of steps)."""
    tensors, steps = {}, []
    for index, (_, estimator) in enumerate(pipeline.steps):
        name = type(estimator).__name__
        where = f"pipeline step {index} ({name})"
        if name not in ESTIMATORS:
            raise TypeError(f"{where}: only {', '.join(ESTIMATORS)} can be stored in a model bundle")
        params = estimator.get_params()
        try:
            json.dumps(params)
        except TypeError as error:
            raise TypeError(f"{where}: its parameters cannot be written as JSON ({error})") from None
        own, fitted = pack_estimator(estimator, where)
        tensors |= {f"{index}.{key}": value for key, value in own.items()}
        steps.append({"class": name, "params": params, "fitted": fitted})
    return tensors, {"steps": steps}


def unpack_pipeline(tensors: dict[str, Tensor], description: dict[str, Any]) -> Pipeline:
    """The pipeline ``pack_pipeline`` wrote, rebuilt from ``ESTIMATORS`` only."""
    steps = []
    for index, step in enumerate(description["steps"]):
        if step["class"] not in ESTIMATORS:
            raise ValueError(f"pipeline step {index} is a {step['class']!r}; a bundle may hold only {', '.join(ESTIMATORS)}")
        estimator = ESTIMATORS[step["class"]](**step["params"])
        own = {key.split(".", 1)[1]: value.numpy() for key, value in tensors.items() if key.split(".", 1)[0] == str(index)}
        if isinstance(estimator, KNeighborsClassifier):
            estimator.fit(own["features"], own["labels"])
        else:
            for key, value in {**step["fitted"], **own}.items():
                if not key.endswith("_") or key.startswith("_") or not key.isidentifier():
                    raise ValueError(f"pipeline step {index}: {key!r} is not a fitted attribute name")
                setattr(estimator, key, value)
        steps.append(estimator)
    return make_pipeline(*steps)

"""One content hash for whatever identifies a result: images, labels, indices, settings."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from torch import Tensor

Part = str | bytes | Tensor | np.ndarray | Mapping[str, Any] | Sequence[Any] | int | float | None


def content_hash(*parts: Part) -> str:
    """16 hex digits of sha256 over ``parts``; each part is framed by its type and length, so
    ("ab", "c") and ("a", "bc") differ, and arrays by dtype and shape as well as bytes."""
    digest = hashlib.sha256()
    for part in parts:
        data = part_bytes(part)
        digest.update(f"{type(part).__name__}:{len(data)}:".encode())
        digest.update(data)
    return digest.hexdigest()[:16]


def part_bytes(part: Part) -> bytes:
    if isinstance(part, bytes):
        return part
    if isinstance(part, str):
        return part.encode()
    if isinstance(part, Tensor):
        part = part.detach().cpu().numpy()
    if isinstance(part, np.ndarray):
        if part.dtype.kind in "OUS":  # strings: by value, not by fixed-width buffer
            return f"{part.shape}".encode() + json.dumps(part.astype(str).tolist()).encode()
        return f"{part.dtype.str}{part.shape}".encode() + np.ascontiguousarray(part).tobytes()
    return json.dumps(part, sort_keys=True, default=str).encode()

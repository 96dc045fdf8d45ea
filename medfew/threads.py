"""How many threads torch computes with: ``threads=<n|auto>``.

On a shared machine torch's default (one thread per core) loses more than the busy cores: threads
that wait for a core stall the others at every parallel region. ``auto`` takes the cores free when
the command starts: the cores this process may use less the load average of the last minute
(``os.getloadavg``, the first number ``uptime`` shows), at least one. The count is printed in the
plan, recorded in the summary and beside each result row: it changes the last digits of results.
"""

from __future__ import annotations

import os
from typing import Any


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the platform tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def free_cores(cores: int | None = None, load: float | None = None) -> int:
    """``cores`` (default: ``usable_cores()``) less the one-minute ``load`` (default: ``os.getloadavg``), rounded, at least 1."""
    cores = usable_cores() if cores is None else cores
    load = os.getloadavg()[0] if load is None else load
    return max(1, min(cores, round(cores - load)))


def resolve_threads(setting: Any) -> int:
    """The thread count of a ``threads`` setting: a positive number, or ``auto`` (``free_cores``)."""
    if setting == "auto":
        return free_cores()
    if isinstance(setting, bool) or not isinstance(setting, int) or setting < 1:
        raise ValueError(f"threads must be a positive number of threads or 'auto' (the cores free at start), got {setting!r}")
    return setting


def use_threads(setting: Any) -> int:
    """Set torch's intra-op thread count from ``setting`` (``resolve_threads``); returns it."""
    import torch

    count = resolve_threads(setting)
    torch.set_num_threads(count)
    return count

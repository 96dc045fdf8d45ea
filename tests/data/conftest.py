"""Fixtures of the data tests."""

import weakref
from collections.abc import Callable

import pytest


def held_one_at_a_time(read: Callable, image_of: Callable = lambda result: result) -> Callable:
    """``read``, failing when an image it returned earlier is still alive: a loader that keeps every
    full-size image until it stacks them fails on its second file."""
    earlier: list[weakref.ref] = []

    def wrapped(*args, **kwargs):
        assert all(ref() is None for ref in earlier), "an image read earlier is still held at full size"
        result = read(*args, **kwargs)
        earlier.append(weakref.ref(image_of(result)))
        return result

    wrapped.reads = earlier
    return wrapped


@pytest.fixture
def one_at_a_time() -> Callable:
    """``one_at_a_time(read[, image_of])``: see ``held_one_at_a_time``."""
    return held_one_at_a_time

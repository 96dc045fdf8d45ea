"""threads=auto: the cores free at start, from the load average; a bad value names the key."""

import pytest
import torch

from medfew.threads import free_cores, resolve_threads, use_threads


@pytest.mark.parametrize("cores, load, free", [(2, 0.0, 2), (2, 0.4, 2), (2, 1.3, 1), (2, 7.9, 1), (16, 3.6, 12), (8, 9.0, 1)])
def test_the_free_cores_are_the_cores_less_the_load_and_at_least_one(cores, load, free):
    assert free_cores(cores, load) == free


def test_a_thread_count_is_a_positive_number_or_auto():
    assert resolve_threads(3) == 3 and 1 <= resolve_threads("auto") <= free_cores(load=0.0)
    for bad in (0, -2, "four", 1.5, True):
        with pytest.raises(ValueError, match=rf"threads must be a positive number of threads or 'auto' \(the cores free at start\), got {bad!r}"):
            resolve_threads(bad)
    before = torch.get_num_threads()
    try:
        assert use_threads(1) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)

"""`IndexPermutation` is a keyed bijection; `DrawSampler` holds no O(items) state."""

import tracemalloc

import numpy as np
import pytest

from vitkd.data.permutation import IndexPermutation
from vitkd.data.sampler import DrawSampler


@pytest.mark.parametrize("n", [1, 2, 3, 7, 16, 17, 1000, 4097, 65536, 100_003])
def test_permutation_is_a_bijection_of_range_n(n: int) -> None:
    image = IndexPermutation(n, (5, 1))(np.arange(n))
    np.testing.assert_array_equal(np.sort(image), np.arange(n))


def test_permutation_depends_on_the_key_only_and_looks_shuffled() -> None:
    n = 10_000
    a, b = IndexPermutation(n, (0, 0)), IndexPermutation(n, (0, 1))
    np.testing.assert_array_equal(a(np.arange(n)), IndexPermutation(n, (0, 0))(np.arange(n)))
    assert (a(np.arange(n)) == b(np.arange(n))).mean() < 0.01
    # neighbouring indices land far apart: no visible structure in the order
    steps = np.abs(np.diff(a(np.arange(n))))
    assert np.median(steps) > n / 5
    # evaluating a part gives the same images as the whole
    idx = np.array([9_999, 0, 5_000, 5_000])
    np.testing.assert_array_equal(a(idx), a(np.arange(n))[idx])
    with pytest.raises(IndexError, match=r"\[0, 10000\)"):
        a(np.array([n]))


def test_sampler_memory_does_not_grow_with_the_number_of_items() -> None:
    # a randperm(...).tolist() of 10^7 items is ~400 MB of Python ints; 10^12 cannot exist
    tracemalloc.start()
    try:
        sampler = DrawSampler(10**7, samples_per_epoch=2_000, seed=1)
        draws = list(sampler)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20
    assert len(set(d % 10**7 for d in draws)) == len(draws)
    huge = DrawSampler(10**12, samples_per_epoch=64, num_replicas=2, rank=1)
    assert len(list(huge)) == 32


def test_sampler_blocks_across_a_pass_boundary_match_single_draws() -> None:
    # positions of one block can straddle two passes: each pass is still a permutation
    sampler = DrawSampler(5, samples_per_epoch=23, seed=4)
    items = [d % 5 for d in sampler]
    for first in range(0, 20, 5):
        assert sorted(items[first : first + 5]) == list(range(5))
    np.testing.assert_array_equal(sampler.items(np.arange(23)), items)

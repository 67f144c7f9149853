"""Which patch tokens of a tile are cached: a fixed random subset, a function of seed and tile."""

from __future__ import annotations

import numpy as np


def index_dtype(n_tokens: int) -> np.dtype:
    """The smallest unsigned type that holds flat indices into a grid of `n_tokens`."""
    return np.dtype(np.uint16) if n_tokens <= 2**16 else np.dtype(np.uint32)


def sample_patch_indices(grid: tuple[int, int], n_keep: int, seed: int, tile: int) -> np.ndarray:
    """int64 (min(n_keep, h * w),) flat indices into `grid`, in a random order.

    A function of `(seed, tile, grid)` only: teachers with the same grid cache the same
    positions (so a crop that keeps one of teacher A's tokens keeps B's), and a resumed or
    re-run cache draws the same tokens. The order is a random permutation, so the first `m`
    tokens that survive a crop are a uniform sample of the survivors.
    """
    n = grid[0] * grid[1]
    rng = np.random.default_rng(np.random.SeedSequence([seed, tile, grid[0], grid[1]]))
    return rng.permutation(n)[: min(n_keep, n)].astype(np.int64)

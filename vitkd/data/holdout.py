"""The held-out tiles: a global, capped, deterministic sample spread over the slides."""

from __future__ import annotations

import numpy as np


def split_holdout(n: int, fraction: float, cap: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic split of `n` tile indices into (train, holdout), as sorted arrays."""
    hold = holdout_indices(n, fraction, cap, seed)
    train = np.ones(n, bool)
    train[hold] = False
    return np.flatnonzero(train), hold


def holdout_size(n: int, fraction: float, cap: int) -> int:
    """`round(n * fraction)` tiles, at most `cap`, none when there is a single tile."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"data.source.holdout_fraction must be in [0, 1), got {fraction}")
    if cap < 0:
        raise ValueError(f"data.source.holdout_max_tiles must be >= 0, got {cap}")
    return min(cap, round(n * fraction)) if n > 1 else 0


def holdout_indices(n: int, fraction: float, cap: int, seed: int) -> np.ndarray:
    """`holdout_size(n, fraction, cap)` global tile indices, sorted, one per equal stratum.

    The index runs slide after slide, so one random tile in each of `k` equal consecutive
    strata spreads the hold-out over the slides in proportion to their tiles (each slide gets
    its share to within one tile) and over each slide's grid. Costs O(k), whatever `n`.
    """
    k = holdout_size(n, fraction, cap)
    if k == 0:
        return np.zeros(0, np.int64)
    bounds = np.arange(k + 1, dtype=np.int64) * n // k
    rng = np.random.default_rng([seed, n])
    return bounds[:-1] + (rng.random(k) * (bounds[1:] - bounds[:-1])).astype(np.int64)


def skip_held(index: np.ndarray | int, held: np.ndarray) -> np.ndarray:
    """Global tile index of training tile `index`, the training tiles being all but `held`.

    `held` is sorted and unique; `held[j] - j` training tiles come before `held[j]`, so training
    tile `t` is global tile `t + #{j : held[j] - j <= t}`.
    """
    index = np.asarray(index, dtype=np.int64)
    before = held - np.arange(len(held), dtype=np.int64)
    return index + np.searchsorted(before, index, side="right")

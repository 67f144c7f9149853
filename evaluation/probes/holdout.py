"""Hold a validation split out of train for early stopping, grouped by slide when slides are known."""

from dataclasses import dataclass

import numpy as np

from evaluation.probes.data import ProbeInputError


@dataclass
class Holdout:
    """Row indices into train: the rows the head fits on and the rows early stopping watches."""

    fit: np.ndarray
    monitor: np.ndarray
    grouped_by: str | None
    n_groups: int


def holdout_split(
    y: np.ndarray,
    groups: np.ndarray | None,
    fraction: float = 0.2,
    seed: int = 0,
    group_name: str = "slide",
) -> Holdout:
    """Split train rows into fit and monitor rows, about `fraction` of them monitored.

    With `groups` (e.g. a slide id per row) whole groups are held out, so tiles of one slide
    never sit on both sides: neighbouring tiles are near-duplicates, and a row-level hold-out
    would reward memorising them. Without groups (or with a single group) rows are held out per
    class (stratified), at least one row of every class that has two or more.

    Args:
        y: integer labels of the train rows.
        groups: group id per train row, or None.
        fraction: share of rows to hold out, in (0, 1).
        seed: seed of the random choice.
        group_name: what a group is, for the record (``slide``, ``patient``).
    """
    if not 0 < fraction < 1:
        raise ProbeInputError(f"validation fraction must be in (0, 1), got {fraction}")
    n = len(y)
    if n < 2:
        raise ProbeInputError(
            f"cannot hold a validation split out of {n} training row(s); add a 'val' split or "
            "use the eva-compatible monitor (--monitor eva)"
        )
    rng = np.random.default_rng(seed)
    if groups is not None and len(np.unique(groups)) >= 2:
        names = rng.permutation(np.unique(groups))
        sizes = np.array([(groups == g).sum() for g in names])
        # Whole groups, in random order, as long as they keep the share under `fraction`: a
        # large group drawn first must not take most of train. If every group alone is too
        # large, the smallest one. One group always stays to fit on.
        picked: list = []
        total = 0
        for name, size in zip(names, sizes, strict=True):
            if len(picked) == len(names) - 1:
                break
            if total + size <= fraction * n:
                picked.append(name)
                total += size
        if not picked:
            picked = [names[int(np.argmin(sizes))]]
        chosen = np.isin(groups, picked)
        return Holdout(np.flatnonzero(~chosen), np.flatnonzero(chosen), group_name, len(names))
    monitor: list[np.ndarray] = []
    for c in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == c))
        if len(rows) >= 2:
            monitor.append(rows[: max(1, round(fraction * len(rows)))])
    chosen = np.zeros(n, dtype=bool)
    if monitor:
        chosen[np.concatenate(monitor)] = True
    else:  # every class has one row: hold out one row anyway
        chosen[rng.integers(n)] = True
    return Holdout(np.flatnonzero(~chosen), np.flatnonzero(chosen), None, 0)

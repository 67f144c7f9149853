"""Random grid-aligned crops of a cached image: the side per batch, the place and turn per view."""

from __future__ import annotations

import math

import numpy as np

from vitkd.cache.geometry import GridCrop


def crop_side(cells: int, scale: tuple[float, float], rng: np.random.Generator) -> int:
    """Side in cells of a square crop whose area fraction is drawn from `scale` (rounded to
    whole cells, at least one)."""
    area = rng.uniform(scale[0], scale[1])
    return int(min(cells, max(1, round(math.sqrt(area) * cells))))


def place_crop(
    cells: int,
    side: int,
    unit: int,
    anchor: tuple[int, int] | None,
    rng: np.random.Generator,
    flip: bool = True,
    rotate: bool = True,
) -> GridCrop:
    """A `side`-cell crop of a `cells`-cell square, with a random flip and quarter turn.

    With `anchor` (the cell of one cached token, drawn by the caller) the crop is placed
    uniformly among the places that contain it, so every view keeps at least one cached token;
    without, uniformly anywhere. The draws are the same in number either way.
    """
    u = rng.random(2)
    do_flip = bool(rng.random() < 0.5) and flip
    turns = int(rng.integers(4)) if rotate else 0
    lo_r, hi_r, lo_c, hi_c = 0, cells - side, 0, cells - side
    if anchor is not None:
        lo_r, hi_r = max(0, anchor[0] - side + 1), min(anchor[0], cells - side)
        lo_c, hi_c = max(0, anchor[1] - side + 1), min(anchor[1], cells - side)
    row = lo_r + int(u[0] * (hi_r - lo_r + 1))
    col = lo_c + int(u[1] * (hi_c - lo_c + 1))
    return GridCrop(row, col, side, unit, do_flip, turns)

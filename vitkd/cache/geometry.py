"""Geometry whose effect on token positions is known: grid-aligned crops, flips, 90-degree turns.

A cached target is a teacher token at a flat position of the teacher grid of the whole cached
image. When the student's view is a crop on that grid, flipped and turned, each token that
stays in the crop has a known position in the view's grid; these functions compute it with the
same array operation that moves the pixels, applied to a grid of indices, so the two cannot
disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GridCrop:
    """A square crop on a grid of `unit`-px cells, then a dihedral transform.

    Attributes:
        row: first cell row of the crop.
        col: first cell column.
        side: crop side in cells.
        unit: cell side in pixels of the cached image (the lcm of the teachers' patch sizes).
        flip: mirror left-right (before the turn).
        turns: counter-clockwise quarter turns, 0-3 (`np.rot90`/`torch.rot90` direction).
    """

    row: int
    col: int
    side: int
    unit: int
    flip: bool = False
    turns: int = 0


def dihedral(x: np.ndarray, flip: bool, turns: int) -> np.ndarray:
    """Mirror axis 1 if `flip`, then turn axes (0, 1) by `turns` quarter turns (any trailing
    axes, e.g. colour, ride along). The 8 combinations are all flips and rotations of a square."""
    if flip:
        x = x[:, ::-1]
    return np.rot90(x, turns % 4, axes=(0, 1))


def crop_pixels(image: np.ndarray, crop: GridCrop) -> np.ndarray:
    """The (side * unit)-px square of `image` (H, W, C) under `crop`, before resizing."""
    y, x, s = crop.row * crop.unit, crop.col * crop.unit, crop.side * crop.unit
    return image[y : y + s, x : x + s]


def track_tokens(
    index: np.ndarray, grid: tuple[int, int], patch: int, crop: GridCrop
) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Where cached tokens land in the view `crop` makes of the cached image.

    Args:
        index: flat row-major positions (P,) on `grid`, the teacher grid of the cached image.
        grid: (h, w) of that grid.
        patch: the teacher's patch size in px (divides `crop.unit`).
        crop: the crop and transform of the view.

    Returns:
        `keep` (P,) bool (inside the crop), `new` (K,) flat positions of the kept tokens on the
        view's teacher grid (in `index` order), and that grid (k, k).
    """
    scale = crop.unit // patch
    r0, c0, k = crop.row * scale, crop.col * scale, crop.side * scale
    rows, cols = np.divmod(np.asarray(index, np.int64), grid[1])
    keep = (rows >= r0) & (rows < r0 + k) & (cols >= c0) & (cols < c0 + k)
    local = (rows[keep] - r0) * k + (cols[keep] - c0)
    # moved[i, j] is the crop-local position whose token lands at view cell (i, j)
    moved = dihedral(np.arange(k * k).reshape(k, k), crop.flip, crop.turns).reshape(-1)
    where = np.empty(k * k, np.int64)
    where[moved] = np.arange(k * k)
    return keep, where[local], (k, k)

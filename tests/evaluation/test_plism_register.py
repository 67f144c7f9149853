"""Tiles of one tissue under several conditions are matched by position, within a tolerance."""

import numpy as np
import pytest

from evaluation.plism.register import RegistrationError, register_tiles


def test_shifted_and_partial_grids_register() -> None:
    grid = np.array([[224 * i, 224 * j] for i in range(3) for j in range(2)])
    feats = np.arange(6, dtype=np.float32)[:, None]
    shifted = (grid[1:] + np.array([3, -2]))[::-1]  # a tile fewer, 3 px off, rows in another order
    slides = {"a": (feats, grid), "b": (feats[1:][::-1], shifted)}
    out, coords, dropped = register_tiles(slides, tolerance=4)
    np.testing.assert_array_equal(coords, grid[1:])
    np.testing.assert_array_equal(out["a"], out["b"])  # row i is the same tile in both
    assert dropped == {"a": 1, "b": 0}
    with pytest.raises(RegistrationError, match="share no tile position"):
        register_tiles(slides, tolerance=0)
    with pytest.raises(RegistrationError, match="half the tile spacing"):
        register_tiles(slides, tolerance=112)

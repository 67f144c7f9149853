"""The tiles to cache: the training data source's slides and grids, read as the teachers see them."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from vitkd.data.augment.geometry import CropBox, crop_resize
from vitkd.data.datamodule import DistillDataModule, TileSource
from vitkd.data.slide_tiles import IndexTiles


def plan_tiles(source: TileSource) -> IndexTiles:
    """Every tile of `source` (slides with a tissue grid, or with coords files), none held out.

    The same slide and coords-file handling as training (`DistillDataModule`): coords files are
    matched to slides by stem (ours or TRIDENT's layout) and checked for tile size and mpp. The
    training run holds its fidelity tiles out of the cache's tiles itself.
    """
    if source.tiles is not None:
        raise ValueError(
            "data.source.tiles (a tile folder) cannot be cached yet: give slides, with or "
            "without coords files"
        )
    dm = DistillDataModule(
        source=replace(source, holdout_fraction=0.0, holdout_max_tiles=0, cache=None)
    )
    dm.setup()
    return dm.train_tiles


def slide_position(tiles: IndexTiles, index: int) -> int:
    """Position in `tiles.reader.index.slides` of the slide global tile `index` comes from."""
    return int(tiles.reader.index.locate(index)[0])


def teacher_input(tile: np.ndarray, size: int) -> np.ndarray:
    """The tile resized to the teachers' input side, as training resizes a whole-tile crop.

    `MultiCrop`'s resize (`crop_resize` of the full box: area-averaged when shrinking 2x or more,
    bicubic otherwise), so a cached image is what the live teacher would see of the whole tile.
    """
    h, w = tile.shape[:2]
    if (h, w) == (size, size):
        return np.ascontiguousarray(tile)
    return crop_resize(tile, CropBox(0, 0, w, h, False), size)

"""Tiles of a `TileIndex`: coords read per slide into a bounded cache, slides from a bounded pool."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

import slides
from slides.handles import DEFAULT_MAX_OPEN
from vitkd.data.holdout import skip_held
from vitkd.data.tile_index import TileIndex

# coords of ~2,000 slides of 10^4 tiles; a worker reading random tiles of 10^4 slides keeps
# this much, not every slide's coords
DEFAULT_COORDS_BYTES = 32 * 1024 * 1024
# TRIDENT files carry no target mpp: the one implied by the slide must be this close to ours
# (TRIDENT's "20x" on a 0.263 um/px scanner is 0.526 um/px)
TRIDENT_MPP_TOLERANCE = 0.1


class SlideTileReader:
    """Reads global tile `i` of `index` as `(uint8 (S, S, 3) RGB, int64 level-0 (x, y))`.

    Per process (each DataLoader worker has its own): the coords of the slides read last, up to
    `coords_bytes`, and a `slides.SlideHandles` pool of at most `max_open` open slides.

    Args:
        index: the tiles.
        mpp: target um/px (checked against TRIDENT files, which do not record it).
        slide_mpp: level-0 um/px override for slides whose files lack it.
        coords_bytes: budget of the coords cache (the latest slide's coords are always kept).
        max_open: most slides open at once.
    """

    def __init__(
        self,
        index: TileIndex,
        mpp: float,
        slide_mpp: float | None = None,
        coords_bytes: int = DEFAULT_COORDS_BYTES,
        max_open: int = DEFAULT_MAX_OPEN,
    ) -> None:
        self.index = index
        self.mpp = mpp
        self.slide_mpp = slide_mpp
        self.coords_bytes = coords_bytes
        self.handles = slides.SlideHandles(max_open=max_open)
        self._grids: OrderedDict[int, slides.TileGrid] = OrderedDict()
        self._cached_bytes = 0

    def slide(self, s: int) -> slides.Slide:
        """Slide `s`, open (from the pool)."""
        return self.handles.get(self.index.slides[s], mpp=self.slide_mpp)

    def grid(self, s: int) -> slides.TileGrid:
        """The grid of slide `s`, its coords read from file on a cache miss."""
        source = self.index.grids[s]
        if isinstance(source, slides.TileGrid):
            return source
        grid = self._grids.get(s)
        if grid is not None:
            self._grids.move_to_end(s)
            return grid
        grid = self._load(s)
        self._grids[s] = grid
        self._cached_bytes += grid.coords.nbytes
        while self._cached_bytes > self.coords_bytes and len(self._grids) > 1:
            _, evicted = self._grids.popitem(last=False)
            self._cached_bytes -= evicted.coords.nbytes
        return grid

    def _load(self, s: int) -> slides.TileGrid:
        path, slide_path = self.index.grids[s], self.index.slides[s]
        # our files are read alone; TRIDENT's lack our level/mpp, which the slide's pyramid gives
        grid = slides.load_grid(path, slide=lambda: self.slide(s))
        if abs(grid.mpp - self.mpp) > TRIDENT_MPP_TOLERANCE * self.mpp:
            raise ValueError(
                f"{path}: on {slide_path} its tiles are {grid.mpp:.3g} um/px, but "
                f"data.source.mpp={self.mpp:g}; re-tile at --mpp {self.mpp:g}"
            )
        if len(grid) != self.index.counts[s]:
            raise slides.SlideError(
                f"{path}: holds {len(grid)} tiles, {self.index.counts[s]} at set-up; the file "
                "changed during training: keep coords files fixed while a run uses them"
            )
        return grid

    def read(self, index: int) -> tuple[np.ndarray, torch.Tensor]:
        """Tile and level-0 (x, y) of global tile `index`."""
        s, local = (int(v) for v in self.index.locate(index))
        grid, slide = self.grid(s), self.slide(s)
        if (grid.level0_width, grid.level0_height) != tuple(slide.dimensions):
            raise slides.SlideError(
                f"{self.index.grids[s]}: made for a {grid.level0_width}x{grid.level0_height} "
                f"slide, but {slide.path} is {slide.dimensions[0]}x{slide.dimensions[1]}; coords "
                "files are matched to slides by file stem: check that each belongs to its slide"
            )
        return grid.read_tile(slide, local), torch.from_numpy(grid.coords[local].copy())

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_grids"], state["_cached_bytes"] = OrderedDict(), 0  # per process
        return state


class IndexTiles(Dataset):
    """Tiles of a `SlideTileReader`: all but the sorted `exclude`, or only the sorted `only`.

    Items are `(uint8 (S, S, 3), level-0 (x, y))`, like `slides.GridTiles`. Memory is
    O(len(exclude) + len(only)) on top of the reader's O(slides).
    """

    def __init__(
        self,
        reader: SlideTileReader,
        exclude: np.ndarray | None = None,
        only: np.ndarray | None = None,
    ) -> None:
        if exclude is not None and only is not None:
            raise ValueError("IndexTiles takes `exclude` or `only`, not both")
        self.reader = reader
        self.exclude = None if exclude is None else np.asarray(exclude, np.int64)
        self.only = None if only is None else np.asarray(only, np.int64)

    def __len__(self) -> int:
        if self.only is not None:
            return len(self.only)
        return len(self.reader.index) - (0 if self.exclude is None else len(self.exclude))

    def global_index(self, index: int) -> int:
        """Global tile index (in `reader.index`) of item `index`."""
        if not 0 <= index < len(self):
            raise IndexError(f"tile {index} out of range for {len(self)} tiles")
        if self.only is not None:
            return int(self.only[index])
        if self.exclude is not None:
            return int(skip_held(index, self.exclude))
        return index

    def __getitem__(self, index: int) -> tuple[np.ndarray, torch.Tensor]:
        return self.reader.read(self.global_index(index))

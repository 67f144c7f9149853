"""Dataset walking a slide's tile grid in order, yielding (tile, level-0 coord)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from slides.errors import SlideError
from slides.grid import TileGrid
from slides.grid_io import load_grid
from slides.slide import Slide, open_slide


class GridTiles(Dataset):
    """Tiles of one slide in grid order; item i is `(transform(tile) or tile, coords[i])`.

    The slide handle is reopened lazily in each DataLoader worker.
    """

    def __init__(
        self,
        slide: str | Path | Slide,
        grid: TileGrid | str | Path,
        transform: Callable[[np.ndarray], Any] | None = None,
    ) -> None:
        """Pair a slide with its grid.

        Args:
            slide: slide path or open `Slide`.
            grid: a `TileGrid` or the HDF5 file written by `save_grid`.
            transform: applied to each (size, size, 3) uint8 RGB tile.
        """
        self.slide = slide if isinstance(slide, Slide) else open_slide(slide)
        self.grid = grid if isinstance(grid, TileGrid) else load_grid(grid, slide=self.slide)
        if (self.grid.level0_width, self.grid.level0_height) != tuple(self.slide.dimensions):
            raise SlideError(
                f"{self.slide.path}: the grid was made for a {self.grid.level0_width}x"
                f"{self.grid.level0_height} slide ({self.grid.slide_name!r}) but this slide is "
                f"{self.slide.dimensions[0]}x{self.slide.dimensions[1]}; pair each grid with its slide."
            )
        self.transform = transform

    def __len__(self) -> int:
        return len(self.grid)

    def __getitem__(self, index: int) -> tuple[Any, torch.Tensor]:
        tile = self.grid.read_tile(self.slide, index)
        coord = torch.from_numpy(self.grid.coords[index].copy())
        return (self.transform(tile) if self.transform is not None else tile), coord

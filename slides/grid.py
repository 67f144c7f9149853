"""Tile grids: level-0 coordinates of tissue tiles at a target resolution and size."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from slides.errors import SlideError
from slides.resolution import magnification_from_mpp
from slides.slide import Slide
from slides.tissue import TissueMask, detect_tissue


@dataclass
class TileGrid:
    """Square tiles of `size` px at `mpp` um/px, placed at level-0 top-left `coords`.

    Attributes:
        coords: (N, 2) int64 level-0 top-left (x, y), row-major order.
        size: tile side in output pixels.
        mpp: output microns per pixel.
        level: pyramid level the tiles are read from.
        size_level0: tile side in level-0 pixels.
        read_size: tile side in pixels read at `level` (resized to `size` only if different).
        overlap: overlap between neighbours in output pixels.
        slide_name: slide file stem.
        level0_width: slide width at level 0.
        level0_height: slide height at level 0.
        slide_mpp: level-0 microns per pixel of the slide.
        level0_magnification: objective power of level 0 (nominal from MPP if not recorded).
    """

    coords: np.ndarray
    size: int
    mpp: float
    level: int
    size_level0: int
    read_size: int
    overlap: int
    slide_name: str
    level0_width: int
    level0_height: int
    slide_mpp: float
    level0_magnification: float

    def __post_init__(self) -> None:
        self.coords = np.asarray(self.coords, dtype=np.int64).reshape(-1, 2)

    def __len__(self) -> int:
        return len(self.coords)

    @property
    def target_magnification(self) -> float:
        """Nominal magnification of the output tiles."""
        return self.level0_magnification * self.slide_mpp / self.mpp

    def read_tile(self, slide: Slide, index: int | tuple[int, int] | np.ndarray) -> np.ndarray:
        """Read one tile as (size, size, 3) uint8 RGB.

        Args:
            slide: the slide the grid was made for.
            index: position in `coords`, or a level-0 (x, y) pair.
        """
        if isinstance(index, int | np.integer):
            x, y = self.coords[index]
        else:
            x, y = index
        tile = slide.read_region((int(x), int(y)), self.level, (self.read_size, self.read_size))
        if self.read_size != self.size:
            tile = np.asarray(Image.fromarray(tile).resize((self.size, self.size), Image.BILINEAR))
        return tile


def grid_geometry(slide: Slide, mpp: float, size: int) -> tuple[int, int, int]:
    """(level, size_level0, read_size) for `size`-px tiles at `mpp` on this slide."""
    if not mpp > 0 or size <= 0:
        raise SlideError(f"target mpp and tile size must be positive, got mpp={mpp}, size={size}.")
    downsample = mpp / slide.mpp
    size_level0 = max(1, round(size * downsample))
    level = slide.get_best_level_for_downsample(downsample)
    read_size = max(1, round(size_level0 / slide.level_downsamples[level]))
    return level, size_level0, read_size


def make_grid(
    slide: Slide,
    mpp: float = 0.5,
    size: int = 224,
    overlap: int = 0,
    min_tissue: float = 0.5,
    tissue: TissueMask | None = None,
) -> TileGrid:
    """Tile the slide at `mpp` um/px with `size`-px tiles, keeping tiles with enough tissue.

    Only whole tiles inside the slide are kept; a slide smaller than one tile or without
    tissue gives an empty grid.

    Args:
        slide: an open slide (its MPP must be known).
        mpp: target microns per pixel of the tiles.
        size: tile side in pixels at `mpp`.
        overlap: overlap between neighbouring tiles, in pixels at `mpp` (0 <= overlap < size).
        min_tissue: minimum tissue fraction of a tile (0 keeps every tile).
        tissue: a precomputed mask (default: `detect_tissue(slide)`).
    """
    if not 0 <= overlap < size:
        raise SlideError(f"overlap must be in [0, size={size}), got {overlap}.")
    if not 0.0 <= min_tissue <= 1.0:
        raise SlideError(f"min_tissue must be a fraction in [0, 1], got {min_tissue}.")
    level, size_level0, read_size = grid_geometry(slide, mpp, size)
    stride = max(1, round((size - overlap) * mpp / slide.mpp))
    width0, height0 = slide.dimensions
    xs = np.arange(0, width0 - size_level0 + 1, stride, dtype=np.int64)
    ys = np.arange(0, height0 - size_level0 + 1, stride, dtype=np.int64)
    grid_y, grid_x = np.meshgrid(ys, xs, indexing="ij")
    coords = np.stack([grid_x.ravel(), grid_y.ravel()], axis=1)
    if len(coords) and min_tissue > 0:
        tissue = tissue if tissue is not None else detect_tissue(slide)
        keep = tissue.fractions(coords, size_level0, size_level0) >= min_tissue - 1e-9
        coords = coords[keep]
    magnification = slide.objective_power or magnification_from_mpp(slide.mpp)
    return TileGrid(
        coords=coords,
        size=size,
        mpp=float(mpp),
        level=level,
        size_level0=size_level0,
        read_size=read_size,
        overlap=overlap,
        slide_name=slide.name,
        level0_width=width0,
        level0_height=height0,
        slide_mpp=slide.mpp,
        level0_magnification=float(magnification),
    )

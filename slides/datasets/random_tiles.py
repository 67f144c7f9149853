"""Dataset of random tissue tiles over many slides, deterministic for a seed."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from slides.errors import SlideError
from slides.grid import TileGrid, make_grid
from slides.handles import SlideHandles
from slides.paths import find_slides
from slides.slide import Slide, open_slide
from slides.tissue import detect_tissue

log = logging.getLogger(__name__)

# Candidate positions are spaced size / _DENSITY apart; a random jitter fills the gaps.
_DENSITY = 4


def _expand(paths: str | Path | Sequence[str | Path]) -> list[Path]:
    """Slide paths from a file, folder, CSV, or a list of any of them."""
    sources = [paths] if isinstance(paths, str | Path) else list(paths)
    if not sources:
        raise SlideError("no slides given: pass slide files, a folder or a CSV of paths.")
    found: list[Path] = []
    for source in sources:
        found.extend(find_slides(source))
    return found


class RandomTissueTiles(Dataset):
    """Random tiles on tissue: a slide drawn with probability proportional to its tissue area,
    then a random position where the tile holds at least `min_tissue` tissue.

    Item `i` depends only on `(seed, i)`, so any worker layout yields the same tiles. Tiles are
    read through a `SlideHandles` pool (each process opens its own handles, at most `max_open`
    at once, sharing one OpenSlide tile cache). Tissue masks are computed once here.
    """

    def __init__(
        self,
        paths: str | Path | Sequence[str | Path],
        mpp: float = 0.5,
        size: int = 224,
        length: int | None = None,
        seed: int = 0,
        min_tissue: float = 0.5,
        transform: Callable[[np.ndarray], Any] | None = None,
        mpp_override: float | None = None,
        skip_errors: bool = False,
        max_open: int = 32,
    ) -> None:
        """Index the tissue of every slide.

        Args:
            paths: slide files, folders or CSVs of slide paths.
            mpp: microns per pixel of the tiles.
            size: tile side in pixels.
            length: items per epoch; default: the number of non-overlapping tissue tiles.
            seed: makes the tile of every index reproducible.
            min_tissue: minimum tissue fraction of a tile.
            transform: applied to each (size, size, 3) uint8 RGB tile.
            mpp_override: level-0 MPP for slides whose files lack it.
            skip_errors: log and leave out unreadable slides instead of raising.
            max_open: most slides a process keeps open for reading tiles.
        """
        self.mpp, self.size, self.seed, self.transform = mpp, size, seed, transform
        self.mpp_override = mpp_override
        self.handles = SlideHandles(max_open=max_open)
        self.slides: list[Slide] = []
        self.grids: list[TileGrid] = []
        self.skipped: list[tuple[Path, str]] = []
        areas = []
        stride = max(1, size // _DENSITY)
        slide_paths = _expand(paths)
        for path in tqdm(slide_paths, desc="tissue", unit="slide", disable=len(slide_paths) < 4):
            try:
                slide = open_slide(path, mpp=mpp_override)
                tissue = detect_tissue(slide)
                grid = make_grid(slide, mpp, size, size - stride, min_tissue, tissue)
            except SlideError as err:
                if not skip_errors:
                    raise
                log.warning("skipping slide: %s", err)
                self.skipped.append((Path(path), str(err)))
                continue
            slide.close()  # `slides` keeps the metadata; tiles are read through `handles`
            if len(grid) == 0:
                log.info("%s: no tile with %.0f%% tissue; left out", path, 100 * min_tissue)
                continue
            self.slides.append(slide)
            self.grids.append(grid)
            areas.append(tissue.tissue_area_level0 * slide.mpp**2)
        if not self.slides:
            raise SlideError(
                f"no tissue tiles in any of the {len(slide_paths)} slide(s) "
                f"({', '.join(p.name for p in slide_paths[:3])}{'...' if len(slide_paths) > 3 else ''}) "
                f"at min_tissue={min_tissue}: check the slides, or lower min_tissue."
            )
        self.weights = np.asarray(areas, np.float64) / float(np.sum(areas))
        self._strides_level0 = [max(1, round(stride * mpp / s.mpp)) for s in self.slides]
        tiles = sum(len(g) for g in self.grids) / (size / stride) ** 2
        self.length = int(length) if length is not None else max(1, round(tiles))
        if self.length < 1:
            raise SlideError(f"length must be a positive number of tiles, got {length}.")

    def __len__(self) -> int:
        return self.length

    def location(self, index: int) -> tuple[int, np.ndarray]:
        """(slide index, level-0 top-left (x, y)) of item `index`."""
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} tiles")
        rng = np.random.default_rng([self.seed, index])
        which = int(rng.choice(len(self.slides), p=self.weights))
        grid = self.grids[which]
        start = grid.coords[rng.integers(len(grid))]
        jitter = rng.integers(0, self._strides_level0[which], size=2)
        high = np.array([grid.level0_width, grid.level0_height]) - grid.size_level0
        return which, np.clip(start + jitter, 0, high).astype(np.int64)

    def __getitem__(self, index: int) -> Any:
        which, xy = self.location(index)
        slide = self.handles.get(self.slides[which].path, mpp=self.mpp_override)
        tile = self.grids[which].read_tile(slide, xy)
        return self.transform(tile) if self.transform is not None else tile

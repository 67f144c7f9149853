"""The tiles of many slides as per-slide counts and their cumulative sum: O(slides) memory."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import slides


@dataclass
class TileIndex:
    """Global tile `i` is tile `i - offsets[s]` of slide `s`, where `offsets[s] <= i < offsets[s+1]`.

    Only per-slide numbers are held: 10^4 slides cost the same whatever their tile count. A
    slide's coordinates are read when its tiles are (see `SlideTileReader`).

    Attributes:
        slides: slide files, in order.
        grids: per slide, its coords file (read lazily) or an in-memory `TileGrid`.
        counts: tiles per slide (int64).
        offsets: `[0, cumsum(counts)]` (int64, one more than there are slides).
    """

    slides: list[Path]
    grids: list[Path | slides.TileGrid]
    counts: np.ndarray
    offsets: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.counts = np.asarray(self.counts, dtype=np.int64).reshape(-1)
        if not len(self.slides) == len(self.grids) == len(self.counts):
            raise ValueError(
                f"TileIndex: {len(self.slides)} slides, {len(self.grids)} grids and "
                f"{len(self.counts)} counts; give one of each per slide"
            )
        if (self.counts < 0).any():
            raise ValueError("TileIndex: tile counts must be >= 0")
        self.offsets = np.concatenate([[0], np.cumsum(self.counts)]).astype(np.int64)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def locate(self, index: int | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(slide, tile within the slide) of global tile `index` (scalars or arrays)."""
        index = np.asarray(index, dtype=np.int64)
        if index.size and (index.min() < 0 or index.max() >= len(self)):
            raise IndexError(f"tile index out of range [0, {len(self)}): {index}")
        slide = np.searchsorted(self.offsets, index, side="right") - 1
        return slide, index - self.offsets[slide]

"""Held-out evaluation tiles for an export: evenly spaced tissue tiles of the given slides."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from slides import SAMPLE_SLIDES, detect_tissue, make_grid, open_slide

# the shipped TCGA sample carries no resolution in its file (slides/samples/README.md: 20x,
# about 0.5 um/px); the other sample has its own
_SAMPLE_MPP = {SAMPLE_SLIDES[1]: 0.5}


def slide_tiles(
    slide_paths: Sequence[str | Path] | None,
    size: int,
    count: int,
    mpp: float = 0.5,
    slide_mpp: float | None = None,
) -> torch.Tensor:
    """`count` uint8 (count, 3, size, size) tissue tiles, spread evenly over the slides' grids.

    Deterministic (no randomness: evenly spaced grid positions), so two exports, or the export
    and the benchmark, measure on the same tiles. Tiles alternate between slides.

    Args:
        slide_paths: slide files; `None` or empty: the sample slides shipped with vitkd.
        size: tile side in pixels (the model's input size).
        count: number of tiles; fewer when the slides hold fewer tissue tiles.
        mpp: resolution in micrometres per pixel.
        slide_mpp: level-0 um/px for slides whose files carry none.
    """
    paths = [Path(p) for p in (slide_paths or SAMPLE_SLIDES)]
    per_slide: list[list[np.ndarray]] = []
    share = -(-count // len(paths))
    for path in paths:
        slide = open_slide(path, mpp=slide_mpp or _SAMPLE_MPP.get(path.resolve()))
        grid = make_grid(slide, mpp=mpp, size=size, tissue=detect_tissue(slide))
        if len(grid) == 0:
            raise ValueError(f"{path}: no tissue tile of {size} px at {mpp} um/px; pass --slides")
        picks = np.unique(np.linspace(0, len(grid) - 1, min(share, len(grid))).round().astype(int))
        per_slide.append([grid.read_tile(slide, int(i)) for i in picks])
    mixed = [t for group in _interleave(per_slide) for t in group][:count]
    return torch.from_numpy(np.stack(mixed).transpose(0, 3, 1, 2).copy())


def _interleave(groups: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
    longest = max(len(g) for g in groups)
    return [[g[i] for g in groups if i < len(g)] for i in range(longest)]

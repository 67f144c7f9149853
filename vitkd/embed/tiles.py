"""Per-source tile streams: the slide grid (or a coords file) or a tile folder, as uint8 CHW batches."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from slides import GridTiles, SlideError, TileFolder, TileGrid, load_grid, make_grid, open_slide
from slides.grid_io import coords_attrs
from slides.slide import Slide
from vitkd.embed.config import EmbedConfig
from vitkd.embed.preprocess import ToCHW
from vitkd.embed.sources import Source

# Relative mismatch between a coords file's mpp and --mpp that is still the same resolution.
_MPP_TOLERANCE = 0.02


class _IndexCoords(Dataset):
    """A TileFolder whose items carry the coords (index, 0) instead of a bare index."""

    def __init__(self, folder: TileFolder) -> None:
        self.folder = folder

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        tile, i = self.folder[index]
        return tile, torch.tensor([i, 0], dtype=torch.int64)


@dataclass
class TileJob:
    """One source ready to stream: dataset of (uint8 CHW tile, coord), coords and attributes.

    Args:
        name: output name of the source.
        dataset: yields `(tile, coord)` in `coords` order.
        coords: (N, 2) int64 level-0 top-left (x, y); (index, 0) for tile folders.
        coords_attrs: TRIDENT attributes for the `coords` dataset.
        mpp: microns per pixel of the tiles (None for tile folders).
        extra: additional datasets to store (e.g. `tile_paths` for tile folders).
    """

    name: str
    dataset: Dataset
    coords: np.ndarray
    coords_attrs: dict[str, Any]
    mpp: float | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n(self) -> int:
        """Number of tiles."""
        return len(self.coords)


def grid_attrs(grid: TileGrid) -> dict[str, Any]:
    """TRIDENT's `coords` attributes of a grid (the same as `slides.save_grid` writes)."""
    return dict(coords_attrs(grid))


def find_coords_file(coords: Path, name: str) -> Path:
    """The coords file for slide `name`: `coords` itself, or `<name>.h5`/`<name>_patches.h5` in it.

    TRIDENT's layout (`<dir>/patches/<name>_patches.h5`) is found too.
    """
    if coords.is_file():
        return coords
    candidates = [
        coords / f"{name}.h5",
        coords / f"{name}_patches.h5",
        coords / "patches" / f"{name}_patches.h5",
    ]
    for path in candidates:
        if path.is_file():
            return path
    raise SlideError(
        f"--coords {coords}: no coords file for slide {name!r} (looked for "
        f"{', '.join(p.name for p in candidates[:2])}); run `python -m slides tile` for it "
        "or leave --coords out to tile it now."
    )


def _slide_grid(slide: Slide, cfg: EmbedConfig, size: int, name: str) -> TileGrid:
    if cfg.coords is None:
        return make_grid(
            slide, mpp=cfg.mpp, size=size, overlap=cfg.overlap, min_tissue=cfg.min_tissue
        )
    path = find_coords_file(cfg.coords, name)
    grid = load_grid(path, slide=slide)
    if grid.size != size:
        raise SlideError(
            f"{path}: tiles are {grid.size} px but the model takes {size} px; pass --size "
            f"{grid.size} (if the model accepts it) or re-tile with --size {size}."
        )
    if abs(grid.mpp - cfg.mpp) > _MPP_TOLERANCE * cfg.mpp:
        raise SlideError(
            f"{path}: tiles are at {grid.mpp:.4g} um/px but --mpp is {cfg.mpp:.4g}; pass "
            f"--mpp {grid.mpp:.4g} or re-tile at {cfg.mpp:.4g}."
        )
    return grid


def prepare_job(source: Source, cfg: EmbedConfig, size: int) -> TileJob:
    """Open a source and describe its tiles (tiling the slide unless `--coords` gives them)."""
    if source.kind == "tiles":
        folder = TileFolder(source.path, transform=ToCHW(size))
        coords = np.stack([np.arange(len(folder)), np.zeros(len(folder))], axis=1).astype(np.int64)
        attrs = {
            "patch_size": size,
            "patch_size_level0": size,
            "overlap": 0,
            "name": source.name,
            "level0_width": len(folder),
            "level0_height": 1,
        }
        rel = [str(p.relative_to(source.path)) for p in folder.paths]
        extra = {"tile_paths": np.array(rel, dtype=object)}
        return TileJob(source.name, _IndexCoords(folder), coords, attrs, None, extra)
    slide = open_slide(source.path, mpp=cfg.slide_mpp)
    grid = _slide_grid(slide, cfg, size, source.name)
    dataset = GridTiles(slide, grid, transform=ToCHW(size))
    slide.close()  # workers reopen their own handle
    return TileJob(source.name, dataset, grid.coords, grid_attrs(grid), grid.mpp)

"""Save and load tile grids as TRIDENT-style HDF5 (`coords` dataset with attributes)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

from slides.atomic import atomic_path
from slides.errors import SlideError, SlideNotFoundError
from slides.grid import TileGrid, grid_geometry
from slides.slide import Slide

_REQUIRED = ("patch_size", "patch_size_level0", "level0_width", "level0_height")


def coords_attrs(grid: TileGrid) -> dict[str, int | float | str]:
    """TRIDENT's `coords` attributes, plus what `load_grid` needs to rebuild the grid."""
    return {
        "patch_size": int(grid.size),
        "patch_size_level0": int(grid.size_level0),
        "level0_magnification": float(grid.level0_magnification),
        "target_magnification": float(grid.target_magnification),
        "overlap": int(grid.overlap),
        "name": str(grid.slide_name),
        "level0_width": int(grid.level0_width),
        "level0_height": int(grid.level0_height),
        "mpp": float(grid.slide_mpp),
        "target_mpp": float(grid.mpp),
        "level": int(grid.level),
        "read_size": int(grid.read_size),
    }


def save_grid(path: str | Path, grid: TileGrid) -> Path:
    """Write `grid` to `path` (HDF5): `coords` (N, 2) int64 with TRIDENT's attributes.

    Extra attributes (`mpp`, `target_mpp`, `level`, `read_size`) let `load_grid` restore the
    grid exactly. The file is written under a temporary name and renamed when complete.
    """
    path = Path(path)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        coords = h5.create_dataset(
            "coords", data=np.asarray(grid.coords, dtype=np.int64).reshape(-1, 2)
        )
        attrs = coords_attrs(grid)
        for key, value in attrs.items():
            coords.attrs[key] = value
    return path


def _attr(attrs: h5py.AttributeManager, key: str) -> object:
    """An attribute as a plain Python value (bytes decoded)."""
    value = attrs[key]
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def load_grid(path: str | Path, slide: Slide | Callable[[], Slide] | None = None) -> TileGrid:
    """Read a grid written by `save_grid` (or by TRIDENT).

    Args:
        path: the HDF5 file.
        slide: needed only for files without our extra attributes (e.g. from TRIDENT), to
            recompute the read level from the slide's pyramid; a function returning the slide
            is called only then.
    """
    path = Path(path)
    if not path.is_file():
        raise SlideNotFoundError(f"{path}: no such grid file; run `python -m slides tile` first.")
    try:
        with h5py.File(path, "r") as h5:
            if "coords" not in h5:
                raise SlideError(f"{path}: no 'coords' dataset; is this a TRIDENT/vitkd grid file?")
            coords = np.asarray(h5["coords"][()], dtype=np.int64).reshape(-1, 2)
            attrs = {key: _attr(h5["coords"].attrs, key) for key in h5["coords"].attrs}
    except OSError as err:
        raise SlideError(f"{path}: cannot be read as HDF5 ({err}); re-run the tiling.") from err
    missing = [key for key in _REQUIRED if key not in attrs]
    if missing:
        raise SlideError(f"{path}: 'coords' lacks attributes {missing}; re-run the tiling.")
    size, size_level0 = int(attrs["patch_size"]), int(attrs["patch_size_level0"])
    if "mpp" in attrs and "target_mpp" in attrs and "level" in attrs:
        slide_mpp, mpp = float(attrs["mpp"]), float(attrs["target_mpp"])
        level, read_size = int(attrs["level"]), int(attrs["read_size"])
    elif slide is not None:
        slide = slide if isinstance(slide, Slide) else slide()
        slide_mpp = slide.mpp
        mpp = slide_mpp * size_level0 / size
        level, _, read_size = grid_geometry(slide, mpp, size)
        read_size = max(1, round(size_level0 / slide.level_downsamples[level]))
    else:
        raise SlideError(
            f"{path}: the file has no level/mpp attributes (not written by vitkd); "
            "pass the slide: load_grid(path, slide=open_slide(...))."
        )
    level0_mag = float(attrs.get("level0_magnification", 0.0) or 0.0)
    return TileGrid(
        coords=coords,
        size=size,
        mpp=mpp,
        level=level,
        size_level0=size_level0,
        read_size=read_size,
        overlap=int(attrs.get("overlap", 0)),
        slide_name=str(attrs.get("name", path.stem)),
        level0_width=int(attrs["level0_width"]),
        level0_height=int(attrs["level0_height"]),
        slide_mpp=slide_mpp,
        level0_magnification=level0_mag,
    )

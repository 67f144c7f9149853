"""Where coords files live: our flat `<dir>/<slide>.h5`, or TRIDENT's `<job>/patches/<slide>_patches.h5`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from slides.errors import SlideError, SlideNotFoundError

Layout = Literal["flat", "trident"]
LAYOUTS: tuple[str, ...] = ("flat", "trident")

# TRIDENT's batch runner looks for `<patch job>/patches/<slide>_patches.h5` and draws the grid
# into `<patch job>/visualization/`
_TRIDENT_PATCHES = "patches"
_TRIDENT_SUFFIX = "_patches.h5"
_TRIDENT_VISUALIZATION = "visualization"


def _check(layout: str) -> None:
    if layout not in LAYOUTS:
        raise SlideError(f"unknown coords layout {layout!r}; choose one of {', '.join(LAYOUTS)}.")


def coords_file(out: str | Path, stem: str, layout: Layout = "flat") -> Path:
    """The coords HDF5 of slide `stem` under `out` in `layout`."""
    _check(layout)
    out = Path(out)
    if layout == "trident":
        return out / _TRIDENT_PATCHES / f"{stem}{_TRIDENT_SUFFIX}"
    return out / f"{stem}.h5"


def thumbnail_file(out: str | Path, stem: str, layout: Layout = "flat") -> Path:
    """The grid thumbnail PNG of slide `stem` under `out` in `layout`."""
    _check(layout)
    out = Path(out)
    if layout == "trident":
        return out / _TRIDENT_VISUALIZATION / f"{stem}.png"
    return out / f"{stem}.png"


def _scan(folder: Path, suffix: str) -> dict[str, Path]:
    """{stem: path} of the visible files in `folder` ending in `suffix` (one directory read)."""
    if not folder.is_dir():
        return {}
    found = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.endswith(suffix) and not entry.name.startswith("."):
                found[entry.name[: -len(suffix)]] = Path(entry.path)
    return found


def find_coords_files(folder: str | Path) -> dict[str, Path]:
    """{slide stem: coords file} in `folder`, read in either layout.

    `folder` is a `python -m slides tile --out` folder (`<slide>.h5`) or a TRIDENT patch job
    (`patches/<slide>_patches.h5`); when both hold a slide, the flat file wins. Two directory
    reads whatever the number of slides (no per-slide `stat`).
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise SlideNotFoundError(
            f"{folder}: no such folder of coords files; run `python -m slides tile SLIDES "
            f"--out {folder}` first (or point to a TRIDENT patch job folder)."
        )
    found = _scan(folder / _TRIDENT_PATCHES, _TRIDENT_SUFFIX)
    found.update(_scan(folder, ".h5"))
    return found

"""Pair slides with precomputed coords files (`python -m slides tile` or TRIDENT) and count tiles."""

from __future__ import annotations

from pathlib import Path

import h5py

import slides

# a file's own target resolution must match the configured one to this relative tolerance
MPP_TOLERANCE = 0.01


def match_coords(slide_paths: list[Path], folder: str | Path) -> list[Path | None]:
    """The coords file of each slide (matched by file stem), `None` where there is none.

    Raises:
        ValueError: two slides share a stem (their coords files would be the same).
    """
    seen: dict[str, Path] = {}
    for path in slide_paths:
        if path.stem in seen and seen[path.stem] != path:
            raise ValueError(
                f"slides {seen[path.stem]} and {path} share the name {path.stem!r}: coords files "
                "are matched to slides by file stem; rename one or train on them separately"
            )
        seen[path.stem] = path
    found = slides.find_coords_files(folder)
    return [found.get(path.stem) for path in slide_paths]


def missing_coords_message(slide: Path, folder: str | Path, n_missing: int, n_slides: int) -> str:
    """Why `slide` cannot be trained on, and how to fix it."""
    return (
        f"{slide}: no coords file in data.source.coords={folder} (looked for "
        f"{slides.coords_file(folder, slide.stem)} and "
        f"{slides.coords_file(folder, slide.stem, 'trident')}; {n_missing} of {n_slides} slides "
        f"lack one). Tile them first: python -m slides tile SLIDES --out {folder}; or leave "
        "them out of data.source.slides, or set data.source.skip_errors: true"
    )


def read_coords_count(path: Path, tile_size: int, mpp: float) -> int:
    """Number of tiles in a coords file, after checking it was made for this tile size and mpp.

    Only the dataset's shape and attributes are read, not the coordinates.

    Raises:
        slides.SlideError: the file is not a readable coords HDF5.
        ValueError: it was made for another tile size or resolution.
    """
    try:
        with h5py.File(path, "r") as h5:
            if "coords" not in h5:
                raise slides.SlideError(f"{path}: no 'coords' dataset; is this a coords file?")
            coords = h5["coords"]
            shape = coords.shape
            patch_size = coords.attrs.get("patch_size")
            target_mpp = coords.attrs.get("target_mpp")
    except OSError as err:
        raise slides.SlideError(
            f"{path}: cannot be read as HDF5 ({err}); re-run the tiling"
        ) from err
    if len(shape) != 2 or shape[1] != 2:
        raise slides.SlideError(f"{path}: 'coords' has shape {shape}, expected (N, 2)")
    if patch_size is None:
        raise slides.SlideError(
            f"{path}: 'coords' has no 'patch_size' attribute; re-run the tiling"
        )
    if int(patch_size) != tile_size:
        raise ValueError(
            f"{path}: tiles of {int(patch_size)} px, but data.source.tile_size={tile_size}; "
            f"re-tile with --size {tile_size} or set data.source.tile_size: {int(patch_size)}"
        )
    if target_mpp is not None and abs(float(target_mpp) - mpp) > MPP_TOLERANCE * mpp:
        raise ValueError(
            f"{path}: tiles at {float(target_mpp):g} um/px, but data.source.mpp={mpp:g}; re-tile "
            f"with --mpp {mpp:g} or set data.source.mpp: {float(target_mpp):g}"
        )
    return int(shape[0])

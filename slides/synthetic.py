"""Synthetic pyramidal H&E-like slides (tiled TIFF that OpenSlide reads, with MPP)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage

from slides.atomic import atomic_path

_BACKGROUND = np.array([243.0, 241.0, 246.0], np.float32)
_EOSIN_LIGHT = np.array([238.0, 168.0, 204.0], np.float32)
_EOSIN_DARK = np.array([212.0, 112.0, 166.0], np.float32)
_HEMATOXYLIN = np.array([86.0, 50.0, 140.0], np.float32)
_CELL = 32  # level-0 pixels per cell of the coarse tissue fields
_NUCLEUS_PX = 6.0  # nucleus texture scale in level-0 pixels


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], blobs: int) -> np.ndarray:
    """Smooth noise in [-1, 1] of `shape` with about `blobs` features per side."""
    small = rng.uniform(-1.0, 1.0, (blobs + 1, blobs + 1))
    zoom = (shape[0] / small.shape[0], shape[1] / small.shape[1])
    out = ndimage.zoom(small, zoom, order=3, mode="nearest", grid_mode=True)
    return np.clip(out[: shape[0], : shape[1]], -1.0, 1.0).astype(np.float32)


def _coarse_fields(
    width: int, height: int, seed: int, tissue: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Tissue density (0-1) and eosin shade (0-1) on a grid of `_CELL`-px cells."""
    rng = np.random.default_rng([seed, 7])
    shape = (math.ceil(height / _CELL) + 1, math.ceil(width / _CELL) + 1)
    ys, xs = (np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32) + 0.5) * _CELL
    density = np.zeros(shape, np.float32)
    if tissue:
        ragged = _smooth_noise(rng, shape, 12)
        side = min(width, height)
        for _ in range(int(rng.integers(3, 7))):
            cx, cy = rng.uniform(0.15, 0.85) * width, rng.uniform(0.15, 0.85) * height
            rx, ry = rng.uniform(0.08, 0.22, size=2) * side
            angle = rng.uniform(0, math.pi)
            dx, dy = xs - cx, ys - cy
            u = (dx * math.cos(angle) + dy * math.sin(angle)) / rx
            v = (-dx * math.sin(angle) + dy * math.cos(angle)) / ry
            dist = np.sqrt(u * u + v * v) * (1.0 + 0.3 * ragged)
            density = np.maximum(density, 1.0 / (1.0 + np.exp((dist - 1.0) * 12.0)))
        lumen = _smooth_noise(rng, shape, 40)
        density *= np.clip((0.75 - lumen) * 4.0, 0.0, 1.0)  # scattered holes (lumina, fat)
    shade = (_smooth_noise(rng, shape, 6) + 1.0) / 2.0
    return density, shade


def _axis_weights(start: int, count: int, scale: float, limit: int) -> tuple[np.ndarray, ...]:
    """Lower source index and weight of the upper one, for linear interpolation on one axis."""
    pos = (np.arange(start, start + count, dtype=np.float64) + 0.5) * scale - 0.5
    pos = np.clip(pos, 0.0, limit - 1.0)
    lo = np.minimum(np.floor(pos).astype(np.int64), limit - 2)
    return lo, (pos - lo).astype(np.float32)


def _interpolate(
    field: np.ndarray, rows: tuple[np.ndarray, ...], cols: tuple[np.ndarray, ...]
) -> np.ndarray:
    """Bilinear samples of `field` on a grid: columns first on the few rows needed, then rows."""
    (r_lo, r_w), (c_lo, c_w) = rows, cols
    first, last = int(r_lo[0]), int(r_lo[-1]) + 2
    band = field[first:last]
    across = band[:, c_lo] * (1.0 - c_w) + band[:, c_lo + 1] * c_w
    r_lo = r_lo - first
    return across[r_lo] * (1.0 - r_w)[:, None] + across[r_lo + 1] * r_w[:, None]


def _noise_bank(seed: int, size: int) -> np.ndarray:
    """Per-pixel colour noise (2 * size, 2 * size, 3), sliced at a random offset per tile."""
    rng = np.random.default_rng([seed, 11])
    return np.rint(rng.normal(0.0, 3.0, (2 * size, 2 * size, 3))).astype(np.float32)


def _render_tile(
    fields: tuple[np.ndarray, np.ndarray, np.ndarray],
    seed: int,
    level: int,
    ty: int,
    tx: int,
    tile: int,
    ds: float,
) -> np.ndarray:
    """One (tile, tile, 3) uint8 tile of a level with downsample `ds`."""
    density_field, shade_field, noise_bank = fields
    rows = _axis_weights(ty * tile, tile, ds / _CELL, density_field.shape[0])
    cols = _axis_weights(tx * tile, tile, ds / _CELL, density_field.shape[1])
    density = np.clip(_interpolate(density_field, rows, cols), 0.0, 1.0)
    shade = _interpolate(shade_field, rows, cols)
    rng = np.random.default_rng([seed, level, ty, tx])
    step = max(1.0, _NUCLEUS_PX / ds)
    n = math.ceil(tile / step) + 2
    noise = rng.random((n, n), dtype=np.float32)
    texture = _axis_weights(0, tile, 1.0 / step, n)
    nuclei = np.clip((_interpolate(noise, texture, texture) - 0.66) * 5.0, 0.0, 1.0)
    # Colour = background + d(1-n) * eosin-light + d(1-n)s * (dark - light) + dn * hematoxylin,
    # each term relative to the background: one (pixels, 3) @ (3, 3) product.
    eosin_amount = density * (1.0 - nuclei)
    weights = np.stack([eosin_amount, eosin_amount * shade, density * nuclei], axis=-1)
    colours = np.stack(
        [_EOSIN_LIGHT - _BACKGROUND, _EOSIN_DARK - _EOSIN_LIGHT, _HEMATOXYLIN - _BACKGROUND]
    )
    oy, ox = rng.integers(0, tile, size=2)
    rgb = weights @ colours + (_BACKGROUND + noise_bank[oy : oy + tile, ox : ox + tile])
    return np.clip(rgb, 0, 255).astype(np.uint8)


def _level_tiles(
    fields: tuple[np.ndarray, np.ndarray, np.ndarray],
    seed: int,
    level: int,
    shape: tuple[int, int],
    tile: int,
    ds: float,
) -> Iterator[np.ndarray]:
    """Tiles of one level in row-major order (edge tiles are padded to full size)."""
    for ty in range(math.ceil(shape[0] / tile)):
        for tx in range(math.ceil(shape[1] / tile)):
            yield _render_tile(fields, seed, level, ty, tx, tile, ds)


def write_synthetic_slide(
    path: str | Path,
    width: int = 4096,
    height: int = 4096,
    mpp: float | None = 0.5,
    tile: int = 256,
    levels: int | None = None,
    seed: int = 0,
    tissue: bool = True,
    compression: str | None = "jpeg",
) -> Path:
    """Write an H&E-like pyramidal tiled TIFF, deterministic for a seed.

    Tiles are generated one at a time, so a 20k x 20k slide needs little memory. OpenSlide
    reads the file as "generic-tiff" with `openslide.mpp-x/y` when `mpp` is given.

    Args:
        path: output `.tif` path.
        width: level-0 width in pixels.
        height: level-0 height in pixels.
        mpp: level-0 microns per pixel written as TIFF resolution; None writes no resolution.
        tile: TIFF tile side (multiple of 16).
        levels: pyramid levels, each half the previous; default: down to ~512 px.
        seed: random seed for the tissue layout and texture.
        tissue: False gives blank glass (background only).
        compression: tifffile compression ("jpeg", "zlib", None, ...).
    """
    path = Path(path)
    if width < 1 or height < 1 or tile % 16:
        raise ValueError(
            f"need width, height >= 1 and tile a multiple of 16; got {width}, {height}, {tile}."
        )
    if levels is None:
        levels = 1
        while max(width, height) / 2**levels >= 512:
            levels += 1
    fields = (*_coarse_fields(width, height, seed, tissue), _noise_bank(seed, tile))
    bigtiff = width * height * 3 * 4 // 3 > 2**31
    compressionargs = {"level": 90} if compression == "jpeg" else None
    with atomic_path(path) as tmp, tifffile.TiffWriter(tmp, bigtiff=bigtiff) as tif:
        for level in range(levels):
            ds = 2**level
            shape = (math.ceil(height / ds), math.ceil(width / ds))
            options: dict[str, object] = {}
            if mpp is not None:
                options = {
                    "resolution": (1e4 / (mpp * ds), 1e4 / (mpp * ds)),
                    "resolutionunit": "CENTIMETER",
                }
            tif.write(
                _level_tiles(fields, seed, level, shape, tile, float(ds)),
                shape=(*shape, 3),
                dtype=np.uint8,
                tile=(tile, tile),
                photometric="rgb",
                compression=compression,
                compressionargs=compressionargs,
                subfiletype=1 if level else 0,
                metadata=None,
                **options,
            )
    return path

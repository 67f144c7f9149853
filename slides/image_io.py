"""Read plain image files as uint8 RGB arrays, whatever their mode or bit depth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from slides.errors import ImageReadError
from slides.paths import TIFF_EXTENSIONS

# What PIL, tifffile and imagecodecs raise on undecodable data (imagecodecs: RuntimeError).
_DECODE_ERRORS = (OSError, ValueError, RuntimeError, SyntaxError, UnidentifiedImageError)


def composite_on_white(rgba: np.ndarray) -> np.ndarray:
    """Blend an (H, W, 4) uint8 RGBA array onto a white background, returning (H, W, 3)."""
    alpha = rgba[..., 3]
    if alpha.min() == 255:
        # Channel-wise copies beat ascontiguousarray(rgba[..., :3]) by ~3x.
        rgb = np.empty((*rgba.shape[:2], 3), np.uint8)
        for channel in range(3):
            rgb[..., channel] = rgba[..., channel]
        return rgb
    a = alpha[..., None].astype(np.float32) / 255.0
    rgb = rgba[..., :3].astype(np.float32) * a + 255.0 * (1.0 - a)
    return np.rint(rgb).astype(np.uint8)


def _scale_to_uint8(arr: np.ndarray, source: str) -> np.ndarray:
    """Map any integer or float array to uint8 over its type's full range."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if arr.dtype == np.uint16:
        return ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.integer):
        # PIL's mode "I" holds 16-bit data in int32: scale by the observed bit depth.
        top = float(arr.max()) if arr.size else 0.0
        scale = 255.0 / 65535.0 if top > 255 else 1.0
        return np.clip(np.rint(arr.astype(np.float64) * scale), 0, 255).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.floating):
        top = float(np.nanmax(arr)) if arr.size else 0.0
        scale = 255.0 if top <= 1.0 else 1.0
        return np.clip(np.rint(np.nan_to_num(arr) * scale), 0, 255).astype(np.uint8)
    raise ImageReadError(
        f"{source}: unsupported pixel type {arr.dtype}; convert the image to 8-bit RGB."
    )


def to_rgb_uint8(arr: np.ndarray, source: str) -> np.ndarray:
    """Convert grayscale, gray+alpha, RGB, RGBA (8/16-bit or float) to (H, W, 3) uint8 RGB.

    Args:
        arr: image array, (H, W) or (H, W, C) with C in 1..4.
        source: file name used in error messages.
    """
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        raise ImageReadError(
            f"{source}: image of shape {arr.shape} is not grayscale/RGB/RGBA; "
            "save tiles as 2-D grayscale or (H, W, 3|4) colour images."
        )
    arr = _scale_to_uint8(arr, source)
    channels = arr.shape[2]
    if channels == 1:
        return np.repeat(arr, 3, axis=2)
    if channels == 2:
        gray = np.repeat(arr[..., :1], 3, axis=2)
        return composite_on_white(np.concatenate([gray, arr[..., 1:]], axis=2))
    if channels == 4:
        return composite_on_white(arr)
    return np.ascontiguousarray(arr)


def _pil_to_array(img: Image.Image) -> np.ndarray:
    """Return a numpy array of a PIL image, expanding palettes and keeping transparency."""
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif img.mode in ("1", "CMYK", "YCbCr", "LAB", "HSV"):
        img = img.convert("L" if img.mode == "1" else "RGB")
    elif img.mode == "I;16B":
        img = img.convert("I;16")
    return np.asarray(img)


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file (PNG, JPEG, TIFF, BMP...) as (H, W, 3) uint8 RGB.

    Raises:
        ImageReadError: the file is missing, unreadable or has an unusable layout.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: file not found; check the path.")
    try:
        if path.suffix.lower() in TIFF_EXTENSIONS:
            import tifffile

            arr = tifffile.imread(path, key=0)
        else:
            with Image.open(path) as img:
                img.load()
                arr = _pil_to_array(img)
    except _DECODE_ERRORS as err:
        raise ImageReadError(
            f"{path}: cannot be read as an image ({type(err).__name__}: {err}); "
            "the file is corrupt, truncated or not an image: re-export it or remove it."
        ) from err
    if arr.ndim == 3 and arr.shape[0] in (3, 4) and arr.shape[2] not in (3, 4):
        arr = np.moveaxis(arr, 0, -1)  # planar TIFF (C, H, W)
    return to_rgb_uint8(arr, str(path))

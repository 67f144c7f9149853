"""OpenSlide backend: pyramidal slides (SVS, NDPI, MRXS, generic tiled TIFF, ...)."""

from __future__ import annotations

import ctypes
import sys
from pathlib import Path

import numpy as np
import openslide
from openslide import lowlevel

from slides.image_io import composite_on_white

# openslide-python's public read_region builds a PIL RGBA image (un-premultiply pass, then a
# copy to get an array). Reading into a numpy buffer through the same C call is ~10% faster per
# tile; the public API remains the fallback if these internals ever change.
_RAW_READ = getattr(lowlevel, "_read_region", None)


def premultiplied_argb_to_rgb(buf: np.ndarray) -> np.ndarray:
    """(h, w) uint32 premultiplied ARGB (OpenSlide's format) -> (h, w, 3) RGB on white."""
    channels = buf.view(np.uint8).reshape(*buf.shape, 4)  # little-endian bytes: B, G, R, A
    if sys.byteorder == "big":
        channels = channels[..., ::-1]
    out = np.empty((*buf.shape, 3), np.uint8)
    out[..., 0] = channels[..., 2]
    out[..., 1] = channels[..., 1]
    out[..., 2] = channels[..., 0]
    alpha = channels[..., 3]
    if alpha.min() < 255:
        # Premultiplied colour over white: c + (255 - a), never above 255.
        out += (255 - alpha)[..., None]
    return out


class OpenSlideReader:
    """Thin wrapper over `openslide.OpenSlide` returning RGB numpy arrays."""

    def __init__(
        self, path: Path, fast: bool = True, cache: openslide.OpenSlideCache | None = None
    ) -> None:
        """Open the slide (raises OpenSlide's own errors; the caller names the file).

        Args:
            path: slide file.
            fast: read straight into numpy when openslide-python's internals allow it.
            cache: a tile cache shared with other handles (default: OpenSlide's own, per handle).
        """
        self._osr = openslide.OpenSlide(str(path))
        if cache is not None:
            self._osr.set_cache(cache)
        self._handle = getattr(self._osr, "_osr", None)
        self.fast = fast and _RAW_READ is not None and self._handle is not None
        self.level_dimensions: tuple[tuple[int, int], ...] = tuple(self._osr.level_dimensions)
        self.level_downsamples: tuple[float, ...] = tuple(self._osr.level_downsamples)
        self.properties: dict[str, str] = dict(self._osr.properties)

    def read_region(
        self, location: tuple[int, int], level: int, size: tuple[int, int]
    ) -> np.ndarray:
        """Read (h, w, 3) uint8 RGB; transparent (outside-slide) pixels become white."""
        if not self.fast:
            return composite_on_white(np.asarray(self._osr.read_region(location, level, size)))
        width, height = size
        buf = np.empty((height, width), np.uint32)
        pointer = buf.ctypes.data_as(ctypes.POINTER(ctypes.c_uint32))
        _RAW_READ(self._handle, pointer, location[0], location[1], level, width, height)
        return premultiplied_argb_to_rgb(buf)

    def close(self) -> None:
        """Release the OpenSlide handle."""
        self._osr.close()


def detect_vendor(path: Path) -> str | None:
    """OpenSlide's vendor name for a file ("aperio", "generic-tiff", ...), or None."""
    try:
        return openslide.OpenSlide.detect_format(str(path))
    except openslide.OpenSlideError:
        return None

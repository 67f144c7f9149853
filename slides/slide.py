"""One `Slide` interface over OpenSlide and plain-image backends."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import openslide
from PIL import Image, UnidentifiedImageError

from slides.errors import (
    CorruptSlideError,
    MissingMPPError,
    SlideError,
    SlideNotFoundError,
    UnsupportedFormatError,
)
from slides.image_reader import ImageReader
from slides.openslide_reader import OpenSlideReader, detect_vendor
from slides.paths import IMAGE_EXTENSIONS, OPENSLIDE_EXTENSIONS, SLIDE_EXTENSIONS
from slides.resolution import mpp_from_properties, objective_from_properties

# Above this many pixels a thumbnail is built strip by strip instead of from one region.
_THUMBNAIL_READ_LIMIT = 16 * 1024 * 1024
_CORRUPT_FIX = "re-copy or re-export the file, or leave it out (--skip-errors in the CLI)"


class _Reader(Protocol):
    """What a backend provides: pyramid geometry, properties, RGB reads."""

    level_dimensions: tuple[tuple[int, int], ...]
    level_downsamples: tuple[float, ...]
    properties: dict[str, str]

    def read_region(
        self, location: tuple[int, int], level: int, size: tuple[int, int]
    ) -> np.ndarray: ...

    def close(self) -> None: ...


def _open_reader(path: Path, cache: openslide.OpenSlideCache | None = None) -> _Reader:
    """Pick the backend for a file, turning every failure into a `SlideError`.

    `cache` is an OpenSlide tile cache to share (see `slides.SlideHandles`); plain images ignore it.
    """
    if not path.exists():
        raise SlideNotFoundError(f"{path}: no such file; check the path.")
    if path.is_dir():
        raise UnsupportedFormatError(
            f"{path}: is a folder, not a slide; pass one slide file (the CLI and "
            "slides.find_slides accept folders)."
        )
    suffix = path.suffix.lower()
    if detect_vendor(path) is not None:
        try:
            return OpenSlideReader(path, cache=cache)
        except openslide.OpenSlideError as err:
            if suffix not in IMAGE_EXTENSIONS:
                raise CorruptSlideError(
                    f"{path}: OpenSlide cannot open it ({err}); {_CORRUPT_FIX}."
                ) from err
    if suffix in IMAGE_EXTENSIONS:
        try:
            return ImageReader(path)
        except (OSError, ValueError, RuntimeError, UnidentifiedImageError, SyntaxError) as err:
            raise CorruptSlideError(
                f"{path}: cannot be read as a slide or an image ({type(err).__name__}: {err}); "
                f"the file is corrupt or truncated: {_CORRUPT_FIX}."
            ) from err
    if suffix in OPENSLIDE_EXTENSIONS:
        raise CorruptSlideError(
            f"{path}: OpenSlide does not recognise this {suffix} file; it is corrupt or "
            f"truncated: {_CORRUPT_FIX}."
        )
    raise UnsupportedFormatError(
        f"{path}: unsupported format {suffix or '(no extension)'!r}; supported: "
        f"{', '.join(SLIDE_EXTENSIONS)}. Convert it to a tiled pyramidal TIFF or a PNG."
    )


def _is_positive_number(value: object) -> bool:
    """True for a finite number > 0 (int, float or numpy scalar)."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return 0.0 < number < math.inf


class Slide:
    """A whole-slide image or plain image with pyramid levels, resolution and RGB reads.

    Pickling keeps only the path and metadata; the file is reopened lazily in the new
    process (also after a fork), so DataLoader workers each own their handle.
    """

    def __init__(
        self,
        path: str | Path,
        mpp: float | None = None,
        cache: openslide.OpenSlideCache | None = None,
    ) -> None:
        """Open a slide.

        Args:
            path: slide or image file.
            mpp: level-0 microns per pixel, overriding (or supplying) the file's value.
            cache: an OpenSlide tile cache shared with other slides of this process.
        """
        self.path = Path(path).expanduser()
        self.name = self.path.stem
        if mpp is not None and not _is_positive_number(mpp):
            raise SlideError(f"{self.path}: mpp override must be a positive number, got {mpp!r}.")
        self._cache = cache
        self._reader: _Reader | None = _open_reader(self.path, cache)
        self._pid = os.getpid()
        self.backend = "openslide" if isinstance(self._reader, OpenSlideReader) else "image"
        self.level_dimensions: tuple[tuple[int, int], ...] = self._reader.level_dimensions
        self.level_downsamples: tuple[float, ...] = self._reader.level_downsamples
        self.properties: dict[str, str] = self._reader.properties
        self.level_count = len(self.level_dimensions)
        self.dimensions: tuple[int, int] = self.level_dimensions[0]
        self.objective_power: float | None = objective_from_properties(self.properties)
        self._mpp: float | None = (
            float(mpp) if mpp is not None else mpp_from_properties(self.properties)
        )

    @property
    def mpp(self) -> float:
        """Level-0 microns per pixel; raises `MissingMPPError` when unknown."""
        if self._mpp is None:
            raise MissingMPPError(
                f"{self.path}: the slide has no microns-per-pixel in its metadata "
                "(openslide.mpp-x, aperio.MPP, TIFF resolution). Pass the scan resolution: "
                "--slide-mpp 0.25 on the command line, or mpp=0.25 (mpp_override= for "
                "datasets) in Python."
            )
        return self._mpp

    @property
    def has_mpp(self) -> bool:
        """Whether `mpp` is known (from the file or the override)."""
        return self._mpp is not None

    def _handle(self) -> _Reader:
        """The backend for this process, reopened after pickling, fork or close()."""
        if self._reader is None or self._pid != os.getpid():
            if self._pid != os.getpid():
                self._cache = None  # the cache belongs to the process that made it
            self._reader = _open_reader(self.path, self._cache)
            self._pid = os.getpid()
        return self._reader

    def read_region(
        self, location: tuple[int, int], level: int, size: tuple[int, int]
    ) -> np.ndarray:
        """Read an (h, w, 3) uint8 RGB region; transparent or outside pixels are white.

        Args:
            location: top-left (x, y) in level-0 pixels.
            level: pyramid level to read from.
            size: (w, h) in pixels of that level.
        """
        if not 0 <= level < self.level_count:
            raise SlideError(
                f"{self.path}: level {level} does not exist (levels 0..{self.level_count - 1})."
            )
        width, height = int(size[0]), int(size[1])
        if width <= 0 or height <= 0:
            raise SlideError(f"{self.path}: region size must be positive, got {size}.")
        try:
            return self._handle().read_region(
                (int(location[0]), int(location[1])), level, (width, height)
            )
        except (openslide.OpenSlideError, OSError, ValueError, RuntimeError) as err:
            if isinstance(err, SlideError):
                raise
            raise CorruptSlideError(
                f"{self.path}: reading {width}x{height} px at {tuple(location)} level {level} "
                f"failed ({type(err).__name__}: {err}); the file is corrupt or truncated: "
                f"{_CORRUPT_FIX}."
            ) from err

    def get_best_level_for_downsample(self, downsample: float) -> int:
        """The coarsest level whose downsample does not exceed `downsample` (0.1% slack)."""
        best = 0
        for level, level_ds in enumerate(self.level_downsamples):
            if level_ds <= downsample * 1.001:
                best = level
        return best

    def get_thumbnail(self, size: tuple[int, int]) -> np.ndarray:
        """An RGB thumbnail fitting in (w, h), aspect ratio kept, read from the best level."""
        width0, height0 = self.dimensions
        scale = max(width0 / size[0], height0 / size[1], 1.0)
        out_w, out_h = max(1, round(width0 / scale)), max(1, round(height0 / scale))
        level = self.get_best_level_for_downsample(scale)
        level_w, level_h = self.level_dimensions[level]
        level_ds = self.level_downsamples[level]
        rows = max(1, _THUMBNAIL_READ_LIMIT // max(level_w, 1))
        strips = []
        for top in range(0, level_h, rows):
            strip_h = min(rows, level_h - top)
            out_top, out_bottom = (
                round(top * out_h / level_h),
                round((top + strip_h) * out_h / level_h),
            )
            if out_bottom <= out_top:
                continue
            region = self.read_region((0, round(top * level_ds)), level, (level_w, strip_h))
            img = Image.fromarray(region).resize((out_w, out_bottom - out_top), Image.BILINEAR)
            strips.append(np.asarray(img))
        return np.concatenate(strips, axis=0)

    def close(self) -> None:
        """Release the file handle; a later read reopens it."""
        if self._reader is not None and self._pid == os.getpid():
            self._reader.close()
        self._reader = None

    def __enter__(self) -> Slide:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_reader"] = None
        state["_cache"] = None
        return state

    def __repr__(self) -> str:
        mpp = f"{self._mpp:.4g}" if self._mpp is not None else "unknown"
        return f"Slide({str(self.path)!r}, {self.dimensions[0]}x{self.dimensions[1]}, mpp={mpp}, levels={self.level_count})"


def open_slide(
    path: str | Path, mpp: float | None = None, cache: openslide.OpenSlideCache | None = None
) -> Slide:
    """Open a slide or image file as a `Slide` (see `Slide.__init__`)."""
    return Slide(path, mpp=mpp, cache=cache)

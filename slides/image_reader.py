"""Single-level backend for plain images (PNG, JPEG, TIFFs OpenSlide refuses)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from slides.image_io import read_image
from slides.paths import TIFF_EXTENSIONS

# PIL refuses very large images by default; slides are large by nature.
Image.MAX_IMAGE_PIXELS = None


def _tiff_properties(path: Path) -> tuple[tuple[int, int], dict[str, str]]:
    """Level-0 (width, height) and resolution properties of a TIFF's first page."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        width, height = int(page.imagewidth), int(page.imagelength)
        props: dict[str, str] = {}
        tags = page.tags
        for name in ("XResolution", "YResolution"):
            tag = tags.get(name)
            if tag is not None:
                num, den = tag.value
                if den:
                    props[f"tiff.{name}"] = str(num / den)
        unit = tags.get("ResolutionUnit")
        if unit is not None:
            props["tiff.ResolutionUnit"] = {2: "inch", 3: "centimeter"}.get(int(unit.value), "none")
    return (width, height), props


def _pil_properties(path: Path) -> tuple[tuple[int, int], dict[str, str]]:
    """Level-0 (width, height) and dpi-derived resolution properties of a PIL image."""
    with Image.open(path) as img:
        width, height = img.size
        dpi = img.info.get("dpi")
    props: dict[str, str] = {}
    if dpi and dpi[0]:
        props = {
            "tiff.XResolution": str(float(dpi[0])),
            "tiff.YResolution": str(float(dpi[1] or dpi[0])),
            "tiff.ResolutionUnit": "inch",
        }
    return (width, height), props


class ImageReader:
    """A plain image seen as a one-level slide; pixels are decoded on first read."""

    def __init__(self, path: Path) -> None:
        """Read the header (size, resolution); raises PIL/tifffile errors on bad files."""
        self._path = path
        if path.suffix.lower() in TIFF_EXTENSIONS:
            dims, self.properties = _tiff_properties(path)
        else:
            dims, self.properties = _pil_properties(path)
        self.level_dimensions: tuple[tuple[int, int], ...] = (dims,)
        self.level_downsamples: tuple[float, ...] = (1.0,)
        self._pixels: np.ndarray | None = None

    def _load(self) -> np.ndarray:
        """Decode the whole image once."""
        if self._pixels is None:
            self._pixels = read_image(self._path)
        return self._pixels

    def read_region(
        self, location: tuple[int, int], level: int, size: tuple[int, int]
    ) -> np.ndarray:
        """Read (h, w, 3) uint8 RGB at level 0; pixels outside the image are white."""
        if level != 0:
            raise ValueError(f"{self._path}: a plain image has only level 0, got level {level}.")
        pixels = self._load()
        x, y = location
        w, h = size
        out = np.full((h, w, 3), 255, dtype=np.uint8)
        height, width = pixels.shape[:2]
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, width), min(y + h, height)
        if x1 > x0 and y1 > y0:
            out[y0 - y : y1 - y, x0 - x : x1 - x] = pixels[y0:y1, x0:x1]
        return out

    def close(self) -> None:
        """Drop the decoded pixels."""
        self._pixels = None

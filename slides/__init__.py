"""Whole-slide images: open, resolution, tissue, tile grids, tile datasets, sample slides."""

import os

# Before anything imports huggingface_hub or albumentations: never touch the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from slides.domains import DomainError, select_domains, slide_domains
from slides.errors import (
    CorruptSlideError,
    ImageReadError,
    MissingMPPError,
    SlideError,
    SlideNotFoundError,
    UnsupportedFormatError,
)
from slides.grid import TileGrid, make_grid
from slides.grid_io import coords_attrs, load_grid, save_grid
from slides.handles import SlideHandles
from slides.image_io import read_image
from slides.layout import coords_file, find_coords_files
from slides.paths import SAMPLE_SLIDE, SAMPLE_SLIDES, SAMPLES, SLIDE_EXTENSIONS, find_slides
from slides.slide import Slide, open_slide
from slides.thumbnail import save_grid_thumbnail
from slides.tissue import TissueMask, detect_tissue

_DATASETS = ("GridTiles", "RandomTissueTiles", "TileFolder")


def __getattr__(name: str) -> object:
    """Import the torch datasets on first use, so the CLI and readers start fast."""
    if name in _DATASETS:
        from slides import datasets

        return getattr(datasets, name)
    raise AttributeError(f"module 'slides' has no attribute {name!r}")


__all__ = [
    "SAMPLES",
    "SAMPLE_SLIDE",
    "SAMPLE_SLIDES",
    "SLIDE_EXTENSIONS",
    "CorruptSlideError",
    "DomainError",
    "GridTiles",
    "ImageReadError",
    "MissingMPPError",
    "RandomTissueTiles",
    "Slide",
    "SlideError",
    "SlideHandles",
    "SlideNotFoundError",
    "TileFolder",
    "TileGrid",
    "TissueMask",
    "UnsupportedFormatError",
    "coords_attrs",
    "coords_file",
    "detect_tissue",
    "find_coords_files",
    "find_slides",
    "load_grid",
    "make_grid",
    "open_slide",
    "read_image",
    "save_grid",
    "save_grid_thumbnail",
    "select_domains",
    "slide_domains",
]

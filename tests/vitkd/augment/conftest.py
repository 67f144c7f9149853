"""Shared tiles for the augmentation tests: real H&E from the sample slide and synthetic H&E."""

from pathlib import Path

import cv2
import numpy as np
import openslide
import pytest

from vitkd.data.augment.macenko import REFERENCE_STAIN_MATRIX

SAMPLE = Path(__file__).resolve().parents[3] / "slides" / "samples" / "CMU-1-Small-Region.svs"


def read_tissue_tile(x: int, y: int, size: int = 224) -> np.ndarray:
    """A level-0 RGB tile of the sample slide."""
    slide = openslide.OpenSlide(str(SAMPLE))
    try:
        return np.asarray(slide.read_region((x, y), 0, (size, size)).convert("RGB"))
    finally:
        slide.close()


def synthetic_he(
    seed: int, size: int = 224, stains: np.ndarray = REFERENCE_STAIN_MATRIX
) -> np.ndarray:
    """Smooth H&E-like image rendered from known stain vectors (Beer-Lambert)."""
    rng = np.random.default_rng(seed)
    fields = []
    for _ in range(2):
        f = cv2.GaussianBlur(rng.random((size, size)).astype(np.float32), (0, 0), 8)
        fields.append((f - f.min()) / (f.max() - f.min()))
    h = np.clip(fields[0] * 2.2 - 0.6, 0, None)
    e = np.clip(fields[1] * 1.6 - 0.3, 0, None)
    od = np.stack([h, e], -1) @ stains
    return np.clip(256 * np.exp(-od) - 0.5, 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def tissue_tile() -> np.ndarray:
    """A 224 px tissue-rich tile of the sample slide (cells and stroma)."""
    return read_tissue_tile(800, 1200)


@pytest.fixture(scope="session")
def synthetic_tile() -> np.ndarray:
    """A 224 px smooth synthetic H&E tile with the Ruifrok stain vectors."""
    return synthetic_he(0)

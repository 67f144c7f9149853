"""The synthetic slide generator: deterministic, pyramidal, H&E-like tissue on glass."""

from pathlib import Path

import numpy as np
import pytest

from slides import open_slide
from slides.synthetic import write_synthetic_slide


def _pixels(path: Path) -> np.ndarray:
    with open_slide(path) as slide:
        return slide.read_region((0, 0), 0, slide.dimensions)


def test_same_seed_same_pixels_other_seed_differs(tmp_path: Path) -> None:
    kwargs = {"width": 512, "height": 384, "compression": "zlib"}
    a = write_synthetic_slide(tmp_path / "a.tif", seed=3, **kwargs)
    b = write_synthetic_slide(tmp_path / "b.tif", seed=3, **kwargs)
    c = write_synthetic_slide(tmp_path / "c.tif", seed=4, **kwargs)
    np.testing.assert_array_equal(_pixels(a), _pixels(b))
    assert np.abs(_pixels(a).astype(int) - _pixels(c)).mean() > 1.0


def test_default_levels_and_odd_sizes(tmp_path: Path) -> None:
    path = write_synthetic_slide(tmp_path / "odd.tif", 1500, 700, mpp=0.25, compression="zlib")
    with open_slide(path) as slide:
        assert slide.level_dimensions == ((1500, 700), (750, 350))
        assert slide.mpp == pytest.approx(0.25)
        assert [p.name for p in tmp_path.iterdir()] == ["odd.tif"]


def test_tissue_is_pink_purple_and_blank_is_glass(pyramid_slide: Path, blank_slide: Path) -> None:
    tissue = _pixels(pyramid_slide).reshape(-1, 3).astype(int)
    saturated = tissue[(tissue.max(1) - tissue.min(1)) > 60]
    assert len(saturated) > 0.1 * len(tissue)
    # H&E: red and blue above green in stained pixels.
    assert (saturated[:, 0] > saturated[:, 1]).mean() > 0.9
    assert (saturated[:, 2] > saturated[:, 1]).mean() > 0.9
    blank = _pixels(blank_slide).astype(int)
    assert blank.min() > 200 and (blank.max(2) - blank.min(2)).mean() < 10

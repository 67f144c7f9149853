"""Tissue detection on the sample and generated slides; tile fractions against brute force."""

from pathlib import Path

import numpy as np
import pytest

from slides import SAMPLE_SLIDE, TissueMask, detect_tissue, open_slide


def test_sample_tissue_fraction_and_location() -> None:
    with open_slide(SAMPLE_SLIDE) as slide:
        tissue = detect_tissue(slide)
        thumb = slide.get_thumbnail(tissue.mask.shape[::-1])
    assert tissue.mask.dtype == bool and tissue.mask.shape == thumb.shape[:2]
    assert 0.15 < tissue.area_fraction < 0.6
    assert tissue.downsample == pytest.approx(16.0, rel=0.01)
    # Detected tissue is darker than the background glass.
    gray = thumb.mean(axis=2)
    assert gray[tissue.mask].mean() < gray[~tissue.mask].mean() - 40


def test_blank_slide_has_no_tissue(blank_slide: Path) -> None:
    with open_slide(blank_slide) as slide:
        tissue = detect_tissue(slide)
    assert tissue.area_fraction == 0.0
    assert tissue.fraction(0, 0, 1024, 1024) == 0.0


def test_fraction_matches_upsampled_mask() -> None:
    rng = np.random.default_rng(0)
    mask = rng.random((20, 30)) > 0.6
    tissue = TissueMask(mask=mask, downsample_xy=(4.0, 5.0))
    dense = np.repeat(np.repeat(mask, 5, axis=0), 4, axis=1)  # level-0 pixels
    for x, y, w, h in [(0, 0, 120, 100), (3, 7, 17, 11), (50, 41, 33, 29), (110, 90, 20, 30)]:
        box = dense[y : y + h, x : x + w]
        expected = box.sum() / (w * h)  # the part outside the slide counts as no tissue
        assert tissue.fraction(x, y, w, h) == pytest.approx(expected, abs=1e-9)
    coords = np.array([[3, 7], [50, 41]])
    np.testing.assert_allclose(
        tissue.fractions(coords, 17, 11),
        [tissue.fraction(3, 7, 17, 11), tissue.fraction(50, 41, 17, 11)],
    )
    assert tissue.tissue_area_level0 == pytest.approx(mask.sum() * 20.0)

"""Opening slides through OpenSlide and the image backend; reads, thumbnails, pickling."""

import pickle
from pathlib import Path

import numpy as np
import openslide
import pytest
from PIL import Image

from slides import SAMPLE_SLIDE, MissingMPPError, Slide, open_slide


def test_sample_slide_metadata() -> None:
    with open_slide(SAMPLE_SLIDE) as slide:
        assert slide.backend == "openslide"
        assert slide.name == "CMU-1-Small-Region"
        assert slide.dimensions == (2220, 2967)
        assert slide.level_count == 1
        assert slide.level_downsamples == (1.0,)
        assert slide.mpp == pytest.approx(0.499)
        assert slide.objective_power == 20.0


def test_sample_read_region_is_rgb_and_matches_openslide() -> None:
    with open_slide(SAMPLE_SLIDE) as slide:
        region = slide.read_region((1000, 1500), 0, (224, 160))
    assert region.dtype == np.uint8 and region.shape == (160, 224, 3)
    reference = np.asarray(
        openslide.OpenSlide(str(SAMPLE_SLIDE)).read_region((1000, 1500), 0, (224, 160))
    )
    np.testing.assert_array_equal(region, reference[..., :3])


def test_region_outside_slide_is_white() -> None:
    with open_slide(SAMPLE_SLIDE) as slide:
        region = slide.read_region((2200, 2900), 0, (64, 100))
    assert (region[:, 30:] == 255).all() and (region[80:] == 255).all()


def test_generated_pyramid_opens_with_mpp_and_levels(pyramid_slide: Path) -> None:
    with open_slide(pyramid_slide) as slide:
        assert slide.backend == "openslide"
        assert slide.properties["openslide.vendor"] == "generic-tiff"
        assert slide.mpp == pytest.approx(0.25)
        assert slide.level_dimensions == ((2048, 2048), (1024, 1024), (512, 512))
        assert slide.level_downsamples == pytest.approx((1.0, 2.0, 4.0))
        assert slide.get_best_level_for_downsample(1.9) == 0
        assert slide.get_best_level_for_downsample(2.0) == 1
        assert slide.get_best_level_for_downsample(100.0) == 2
        assert slide.read_region((512, 512), 2, (64, 32)).shape == (32, 64, 3)


def test_thumbnail_fits_box_and_keeps_aspect() -> None:
    with open_slide(SAMPLE_SLIDE) as slide:
        thumb = slide.get_thumbnail((300, 300))
    assert thumb.dtype == np.uint8 and thumb.shape == (300, round(2220 * 300 / 2967), 3)


def test_mpp_override_and_missing_mpp_error(no_mpp_slide: Path) -> None:
    slide = open_slide(no_mpp_slide)
    assert not slide.has_mpp
    assert slide.dimensions == (1024, 1024)  # metadata works without MPP
    with pytest.raises(MissingMPPError, match=r"no_mpp\.tif.*--slide-mpp"):
        _ = slide.mpp
    assert open_slide(no_mpp_slide, mpp=0.3).mpp == 0.3
    assert open_slide(SAMPLE_SLIDE, mpp=0.25).mpp == 0.25


def test_pickled_slide_reopens_and_reads_the_same(pyramid_slide: Path) -> None:
    slide = open_slide(pyramid_slide)
    expected = slide.read_region((100, 200), 1, (50, 40))
    clone = pickle.loads(pickle.dumps(slide))
    assert clone._reader is None
    np.testing.assert_array_equal(clone.read_region((100, 200), 1, (50, 40)), expected)
    slide.close()
    np.testing.assert_array_equal(slide.read_region((100, 200), 1, (50, 40)), expected)


def test_png_is_a_single_level_slide_with_dpi_mpp(tmp_path: Path) -> None:
    rgba = np.zeros((60, 80, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, :40, 3] = 255  # right half transparent
    path = tmp_path / "image.png"
    Image.fromarray(rgba).save(path, dpi=(50800, 50800))  # 0.5 um/px
    slide = Slide(path)
    assert slide.backend == "image" and slide.level_count == 1
    assert slide.dimensions == (80, 60)
    assert slide.mpp == pytest.approx(0.5)
    region = slide.read_region((30, 50), 0, (20, 20))
    np.testing.assert_array_equal(region[:10, :10], np.full((10, 10, 3), (200, 0, 0)))
    assert (region[:, 10:] == 255).all() and (region[10:] == 255).all()


def test_screen_dpi_is_not_taken_as_mpp(tmp_path: Path) -> None:
    path = tmp_path / "screen.jpg"
    Image.new("RGB", (32, 32), "white").save(path, dpi=(72, 72))
    assert not open_slide(path).has_mpp


def test_striped_tiff_uses_image_backend_with_resolution(tmp_path: Path) -> None:
    import tifffile

    path = tmp_path / "striped.tif"
    data = np.random.default_rng(0).integers(0, 255, (100, 120, 3), dtype=np.uint8)
    tifffile.imwrite(path, data, resolution=(1e4 / 0.5, 1e4 / 0.5), resolutionunit="CENTIMETER")
    slide = open_slide(path)
    assert slide.backend == "image" and slide.mpp == pytest.approx(0.5)
    np.testing.assert_array_equal(slide.read_region((10, 20), 0, (30, 40)), data[20:60, 10:40])


@pytest.mark.parametrize("location", [(1000, 1500), (2100, 2900), (-20, -10)])
def test_fast_openslide_read_matches_public_api(location: tuple[int, int]) -> None:
    from slides.openslide_reader import OpenSlideReader

    fast, public = OpenSlideReader(SAMPLE_SLIDE), OpenSlideReader(SAMPLE_SLIDE, fast=False)
    assert fast.fast and not public.fast
    a = fast.read_region(location, 0, (200, 150))
    b = public.read_region(location, 0, (200, 150))
    assert a.shape == b.shape == (150, 200, 3)
    # Identical on opaque pixels; compositing rounds differently at most by 1 elsewhere.
    assert np.abs(a.astype(int) - b).max() <= 1
    if location != (1000, 1500):
        assert (a == 255).any()

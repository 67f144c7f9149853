"""Tile grids: tissue-only coordinates, level choice, resizing, overlap and empty cases."""

from pathlib import Path

import numpy as np
import pytest

from slides import SAMPLE_SLIDE, MissingMPPError, SlideError, detect_tissue, make_grid, open_slide


def test_sample_grid_keeps_tissue_tiles_only() -> None:
    with open_slide(SAMPLE_SLIDE) as slide:
        tissue = detect_tissue(slide)
        grid = make_grid(slide, mpp=0.5, size=224, min_tissue=0.5, tissue=tissue)
        full = make_grid(slide, mpp=0.5, size=224, min_tissue=0.0)
        tile = grid.read_tile(slide, 0)
        direct = slide.read_region(tuple(grid.coords[0]), 0, (224, 224))
    assert grid.coords.dtype == np.int64 and grid.coords.shape[1] == 2
    assert 10 < len(grid) < len(full) == (2220 // 224) * (2967 // 224)
    assert (grid.level, grid.size_level0, grid.read_size) == (0, 224, 224)
    assert tile.shape == (224, 224, 3) and tile.dtype == np.uint8
    np.testing.assert_array_equal(tile, direct)  # no resize when read_size == size
    # Every kept tile has >= 50% tissue; every dropped tile has less.
    kept = {tuple(c) for c in grid.coords}
    dsx, dsy = tissue.downsample_xy
    for x, y in full.coords:
        box = tissue.mask[
            round(y / dsy) : round((y + 224) / dsy), round(x / dsx) : round((x + 224) / dsx)
        ]
        if box.mean() > 0.6:
            assert (x, y) in kept
        if box.mean() < 0.4:
            assert (x, y) not in kept
    # Row-major order, inside the slide.
    order = np.lexsort((grid.coords[:, 0], grid.coords[:, 1]))
    np.testing.assert_array_equal(order, np.arange(len(grid)))
    assert (grid.coords >= 0).all() and (grid.coords[:, 0] + 224 <= 2220).all()


def test_lower_resolution_reads_a_lower_level(pyramid_slide: Path) -> None:
    with open_slide(pyramid_slide) as slide:
        grid = make_grid(slide, mpp=1.0, size=224, min_tissue=0.25)
        assert (grid.level, grid.size_level0, grid.read_size) == (2, 896, 224)
        assert len(grid) > 0
        x, y = grid.coords[0]
        tile = grid.read_tile(slide, 0)
        np.testing.assert_array_equal(tile, slide.read_region((x, y), 2, (224, 224)))
        half = make_grid(slide, mpp=0.5, size=224, min_tissue=0.25)
        assert (half.level, half.size_level0, half.read_size) == (1, 448, 224)


def test_between_levels_reads_finer_level_and_resizes(pyramid_slide: Path) -> None:
    with open_slide(pyramid_slide) as slide:
        grid = make_grid(slide, mpp=0.75, size=100, min_tissue=0.0)
        assert (grid.level, grid.size_level0, grid.read_size) == (1, 300, 150)
        assert grid.read_tile(slide, 3).shape == (100, 100, 3)
        assert grid.read_tile(slide, (10, 20)).shape == (100, 100, 3)


def test_overlap_sets_the_stride(pyramid_slide: Path) -> None:
    with open_slide(pyramid_slide) as slide:
        grid = make_grid(slide, mpp=1.0, size=224, overlap=112, min_tissue=0.0)
    xs = np.unique(grid.coords[:, 0])
    np.testing.assert_array_equal(np.diff(xs), 448)
    assert xs[-1] + 896 <= 2048 and grid.overlap == 112
    with pytest.raises(SlideError, match="overlap"):
        make_grid(open_slide(pyramid_slide), overlap=224)


def test_slide_smaller_than_a_tile_gives_empty_grid(tiny_slide: Path) -> None:
    with open_slide(tiny_slide) as slide:
        grid = make_grid(slide, mpp=0.5, size=224)
    assert len(grid) == 0 and grid.coords.shape == (0, 2)


def test_no_tissue_gives_empty_grid(blank_slide: Path) -> None:
    with open_slide(blank_slide) as slide:
        grid = make_grid(slide, mpp=0.5, size=224)
    assert grid.coords.shape == (0, 2)


def test_unknown_mpp_is_a_clear_error_and_override_works(no_mpp_slide: Path) -> None:
    with pytest.raises(MissingMPPError, match=r"no_mpp\.tif.*--slide-mpp"):
        make_grid(open_slide(no_mpp_slide))
    grid = make_grid(open_slide(no_mpp_slide, mpp=0.5), size=128)
    assert len(grid) > 0

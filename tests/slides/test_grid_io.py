"""HDF5 grids (TRIDENT attributes, round trip) and the grid thumbnail PNG."""

from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from slides import SAMPLE_SLIDE, load_grid, make_grid, open_slide, save_grid, save_grid_thumbnail

TRIDENT_ATTRS = (
    "patch_size",
    "patch_size_level0",
    "level0_magnification",
    "target_magnification",
    "overlap",
    "name",
    "level0_width",
    "level0_height",
)


def test_roundtrip_with_trident_attributes(tmp_path: Path, pyramid_slide: Path) -> None:
    slide = open_slide(pyramid_slide)
    grid = make_grid(slide, mpp=1.0, size=224, overlap=32, min_tissue=0.25)
    path = save_grid(tmp_path / "out" / "pyramid.h5", grid)
    with h5py.File(path, "r") as h5:
        coords = h5["coords"]
        assert coords.dtype == np.int64 and coords.shape == (len(grid), 2)
        assert set(TRIDENT_ATTRS) <= set(coords.attrs)
        assert coords.attrs["patch_size"] == 224
        assert coords.attrs["patch_size_level0"] == 896
        assert coords.attrs["overlap"] == 32
        assert coords.attrs["name"] == "pyramid"
        assert (coords.attrs["level0_width"], coords.attrs["level0_height"]) == (2048, 2048)
        # No objective power in a generic TIFF: nominal magnification from 0.25 um/px.
        assert coords.attrs["level0_magnification"] == 40
        assert coords.attrs["target_magnification"] == pytest.approx(10.0)
    loaded = load_grid(path)
    np.testing.assert_array_equal(loaded.coords, grid.coords)
    for field in ("size", "mpp", "level", "size_level0", "read_size", "overlap", "slide_name"):
        assert getattr(loaded, field) == getattr(grid, field)
    np.testing.assert_array_equal(loaded.read_tile(slide, 2), grid.read_tile(slide, 2))
    assert [p.name for p in path.parent.iterdir()] == ["pyramid.h5"]  # no temporary left


def test_trident_file_without_extras_needs_the_slide(tmp_path: Path) -> None:
    slide = open_slide(SAMPLE_SLIDE)
    grid = make_grid(slide)
    path = tmp_path / "trident.h5"
    with h5py.File(path, "w") as h5:
        dset = h5.create_dataset("coords", data=grid.coords)
        for key, value in {
            "patch_size": 224,
            "patch_size_level0": 224,
            "overlap": 0,
            "level0_width": 2220,
            "level0_height": 2967,
            "name": "x",
        }.items():
            dset.attrs[key] = value
    with pytest.raises(ValueError, match="pass the slide"):
        load_grid(path)
    loaded = load_grid(path, slide=slide)
    assert (loaded.level, loaded.read_size) == (0, 224)
    assert loaded.mpp == pytest.approx(0.499)


def test_empty_grid_roundtrip(tmp_path: Path, blank_slide: Path) -> None:
    grid = make_grid(open_slide(blank_slide))
    loaded = load_grid(save_grid(tmp_path / "blank.h5", grid))
    assert loaded.coords.shape == (0, 2) and loaded.coords.dtype == np.int64


def test_thumbnail_png_has_grid_drawn(tmp_path: Path) -> None:
    slide = open_slide(SAMPLE_SLIDE)
    grid = make_grid(slide)
    path = save_grid_thumbnail(tmp_path / "thumb.png", slide, grid, max_side=512)
    with Image.open(path) as img:
        assert img.format == "PNG" and max(img.size) == 512
        pixels = np.asarray(img.convert("RGB"))
    green = (pixels == (0, 160, 60)).all(axis=2)
    scale = 512 / 2967
    x, y = grid.coords[0]
    assert (
        green[round(y * scale) + 5, round(x * scale)]
        or green[round(y * scale) + 5, round(x * scale) + 1]
    )
    assert green.sum() > len(grid) * 50


def test_thumbnail_of_empty_grid_has_no_outlines(tmp_path: Path, blank_slide: Path) -> None:
    slide = open_slide(blank_slide)
    path = save_grid_thumbnail(tmp_path / "blank.png", slide, make_grid(slide))
    pixels = np.asarray(Image.open(path).convert("RGB"))
    assert pixels.shape == (1024, 1024, 3) and not (pixels == (0, 160, 60)).all(axis=2).any()

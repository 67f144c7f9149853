"""Tile datasets: deterministic random tissue tiles, grid walks, and DataLoader workers."""

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from slides import (
    SAMPLE_SLIDE,
    GridTiles,
    RandomTissueTiles,
    SlideError,
    detect_tissue,
    make_grid,
    open_slide,
    save_grid,
)


@pytest.fixture(scope="module")
def random_tiles(pyramid_slide: Path) -> RandomTissueTiles:
    return RandomTissueTiles([SAMPLE_SLIDE, pyramid_slide], mpp=0.5, size=64, length=16, seed=0)


def test_random_tiles_deterministic_per_seed(
    random_tiles: RandomTissueTiles, pyramid_slide: Path
) -> None:
    again = RandomTissueTiles([SAMPLE_SLIDE, pyramid_slide], mpp=0.5, size=64, length=16, seed=0)
    other = RandomTissueTiles([SAMPLE_SLIDE, pyramid_slide], mpp=0.5, size=64, length=16, seed=1)
    for i in (0, 5, 15):
        tile = random_tiles[i]
        assert tile.shape == (64, 64, 3) and tile.dtype == np.uint8
        np.testing.assert_array_equal(tile, again[i])
        np.testing.assert_array_equal(tile, random_tiles[i])
    locations = [random_tiles.location(i)[1].tolist() for i in range(16)]
    assert locations != [other.location(i)[1].tolist() for i in range(16)]
    with pytest.raises(IndexError):
        random_tiles[16]


def test_random_tiles_land_on_tissue_weighted_by_area(pyramid_slide: Path) -> None:
    random_tiles = RandomTissueTiles([SAMPLE_SLIDE, pyramid_slide], size=64, length=400, seed=5)
    tissues = [detect_tissue(slide) for slide in random_tiles.slides]
    areas = np.array(
        [t.tissue_area_level0 * s.mpp**2 for t, s in zip(tissues, random_tiles.slides, strict=True)]
    )
    np.testing.assert_allclose(random_tiles.weights, areas / areas.sum())
    picks = np.zeros(2)
    for i in range(400):
        which, (x, y) = random_tiles.location(i)
        picks[which] += 1
        side = random_tiles.grids[which].size_level0
        # Jitter of a quarter tile can move off the 50% tissue threshold, not off tissue.
        assert tissues[which].fraction(x, y, side, side) > 0.2
    np.testing.assert_allclose(picks / picks.sum(), random_tiles.weights, atol=0.08)


def test_random_tiles_default_length_and_transform(pyramid_slide: Path) -> None:
    dataset = RandomTissueTiles(pyramid_slide, mpp=1.0, size=64, transform=lambda t: t.mean())
    full = make_grid(open_slide(pyramid_slide), mpp=1.0, size=64)
    assert abs(len(dataset) - len(full)) <= 0.15 * len(full)
    assert isinstance(dataset[0], np.floating)


def test_random_tiles_same_with_two_workers(random_tiles: RandomTissueTiles) -> None:
    serial = torch.cat(list(DataLoader(random_tiles, batch_size=4)))
    parallel = torch.cat(list(DataLoader(random_tiles, batch_size=4, num_workers=2)))
    assert serial.shape == (16, 64, 64, 3) and serial.dtype == torch.uint8
    assert torch.equal(serial, parallel)


def test_grid_tiles_walk_in_order_with_workers(tmp_path: Path, pyramid_slide: Path) -> None:
    slide = open_slide(pyramid_slide)
    grid = make_grid(slide, mpp=1.0, size=96, min_tissue=0.25)
    dataset = GridTiles(pyramid_slide, grid)
    tile, coord = dataset[1]
    np.testing.assert_array_equal(tile, grid.read_tile(slide, 1))
    assert coord.dtype == torch.int64 and coord.tolist() == grid.coords[1].tolist()
    from_file = GridTiles(slide, save_grid(tmp_path / "g.h5", grid), transform=lambda t: t[:8])
    tiles, coords = zip(*DataLoader(from_file, batch_size=5, num_workers=2), strict=True)
    np.testing.assert_array_equal(torch.cat(coords).numpy(), grid.coords)
    assert torch.cat(tiles).shape == (len(grid), 8, 96, 3)
    assert torch.equal(torch.cat(tiles)[1], torch.from_numpy(grid.read_tile(slide, 1)[:8]))


def test_grid_tiles_rejects_grid_of_another_slide(pyramid_slide: Path) -> None:
    grid = make_grid(open_slide(SAMPLE_SLIDE))
    with pytest.raises(SlideError, match="grid was made for a 2220x2967 slide"):
        GridTiles(pyramid_slide, grid)

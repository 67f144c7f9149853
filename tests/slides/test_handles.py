"""`SlideHandles`: a bounded LRU of open slides per process, sharing one OpenSlide tile cache."""

import pickle
from pathlib import Path

import numpy as np
import openslide
import pytest

from slides import SAMPLE_SLIDE, RandomTissueTiles, SlideHandles


@pytest.fixture()
def many_slides(tmp_path: Path) -> list[Path]:
    """Five links to the sample slide: five distinct slides to the pool."""
    paths = []
    for i in range(5):
        path = tmp_path / f"s{i}.svs"
        path.symlink_to(SAMPLE_SLIDE)
        paths.append(path)
    return paths


def _is_open(slide) -> bool:
    return slide._reader is not None


def test_pool_keeps_at_most_max_open_and_closes_the_least_recently_used(
    many_slides: list[Path],
) -> None:
    pool = SlideHandles(max_open=2)
    opened = [pool.get(path) for path in many_slides]
    assert len(pool) == 2
    assert [_is_open(s) for s in opened] == [False, False, False, True, True]
    again = pool.get(many_slides[3])  # a hit: same handle, now the most recent
    assert again is opened[3]
    pool.get(many_slides[0])  # evicts s4, the least recently used
    assert _is_open(opened[3]) and not _is_open(opened[4]) and len(pool) == 2
    tile = pool.get(many_slides[1]).read_region((0, 0), 0, (32, 32))
    assert tile.shape == (32, 32, 3)
    pool.close()
    assert len(pool) == 0 and not any(_is_open(s) for s in opened)


def test_openslide_handles_share_one_cache(many_slides: list[Path], monkeypatch) -> None:
    caches = []
    original = openslide.OpenSlide.set_cache
    monkeypatch.setattr(
        openslide.OpenSlide,
        "set_cache",
        lambda self, cache: (caches.append(cache), original(self, cache))[1],
    )
    pool = SlideHandles(max_open=2, cache_bytes=1 << 20)
    for path in many_slides:
        pool.get(path).read_region((0, 0), 0, (16, 16))
    assert len(caches) == 5 and all(c is caches[0] for c in caches)


def test_pickled_pool_starts_empty(many_slides: list[Path]) -> None:
    pool = SlideHandles(max_open=3)
    pool.get(many_slides[0])
    copy = pickle.loads(pickle.dumps(pool))
    assert len(copy) == 0 and copy.max_open == 3


def test_random_tiles_read_through_a_bounded_pool(many_slides: list[Path]) -> None:
    dataset = RandomTissueTiles(many_slides, mpp=1.0, size=32, length=40, seed=0, max_open=2)
    tiles = [dataset[i] for i in range(40)]
    assert len({dataset.location(i)[0] for i in range(40)}) > 2  # touched more slides than kept
    assert len(dataset.handles) <= 2
    assert sum(_is_open(s) for s in dataset.slides) == 0  # metadata copies stay closed
    np.testing.assert_array_equal(tiles[7], dataset[7])

"""Fixtures of the cache tests: three generated slides and one cache built from them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cache_fixtures import build

from slides.synthetic import write_synthetic_slide


@pytest.fixture(scope="session")
def slide_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three small tissue slides at 0.5 um/px (20 tiles of 56 px at 1 um/px, tissue >= 0.25)."""
    root = tmp_path_factory.mktemp("cache_slides")
    for i, seed in enumerate((1, 4, 6)):
        write_synthetic_slide(root / f"s{i}.tif", 640, 512, mpp=0.5, seed=seed)
    return root


@pytest.fixture(scope="session")
def built_cache(slide_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PNG cache of the slides by the tiny teacher: 6 tokens per tile, shards of 8 tiles."""
    out = tmp_path_factory.mktemp("cache") / "c"
    build(slide_dir, out)
    return out


@pytest.fixture()
def cache_copy(built_cache: Path, tmp_path: Path) -> Path:
    """A private copy of `built_cache` (tests may damage it)."""
    return Path(shutil.copytree(built_cache, tmp_path / "c"))

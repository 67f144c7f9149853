"""Fixtures of the data tests: three slides and their coords files."""

from pathlib import Path

import pytest
from data_fixtures import link_slides, tile


@pytest.fixture(scope="module")
def three_slides(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(folder of slides s0..s2, folder of their flat coords files)."""
    root = tmp_path_factory.mktemp("three")
    link_slides(root / "slides", 3)
    return root / "slides", tile(root / "slides", root / "coords")

"""Slides and their coords files, shared by the data tests."""

from pathlib import Path

import pytest

from slides import SAMPLE_SLIDE
from slides.cli import main as slides_cli

SIZE = 56


def link_slides(folder: Path, n: int) -> list[Path]:
    """`n` differently named links to the sample slide: `n` slides of the same tiles."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"s{i}.svs"
        path.symlink_to(SAMPLE_SLIDE)
        paths.append(path)
    return paths


def tile(slides_dir: Path, out: Path, *extra: str) -> Path:
    """`python -m slides tile` at 0.5 um/px, SIZE px; returns `out`."""
    args = ["tile", str(slides_dir), "--out", str(out), "--size", str(SIZE), *extra]
    assert slides_cli(args) == 0
    return out


@pytest.fixture(scope="module")
def three_slides(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(folder of slides s0..s2, folder of their flat coords files)."""
    root = tmp_path_factory.mktemp("three")
    link_slides(root / "slides", 3)
    return root / "slides", tile(root / "slides", root / "coords")

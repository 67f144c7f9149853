"""Slides and coords files for the data tests (a module of its own: `conftest` names clash)."""

from pathlib import Path

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

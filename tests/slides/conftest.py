"""Generated slides shared by the slides tests (written once per session, kept small)."""

from pathlib import Path

import pytest

from slides.synthetic import write_synthetic_slide


@pytest.fixture(scope="session")
def slide_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder for session-wide generated slides."""
    return tmp_path_factory.mktemp("generated_slides")


@pytest.fixture(scope="session")
def pyramid_slide(slide_dir: Path) -> Path:
    """2048 px at 0.25 um/px with 3 levels (downsamples 1, 2, 4), JPEG tiles."""
    return write_synthetic_slide(slide_dir / "pyramid.tif", 2048, 2048, mpp=0.25, levels=3, seed=1)


@pytest.fixture(scope="session")
def blank_slide(slide_dir: Path) -> Path:
    """1024 px of empty glass at 0.5 um/px."""
    return write_synthetic_slide(slide_dir / "blank.tif", 1024, 1024, mpp=0.5, tissue=False)


@pytest.fixture(scope="session")
def no_mpp_slide(slide_dir: Path) -> Path:
    """1024 px with tissue but no resolution tags."""
    return write_synthetic_slide(slide_dir / "no_mpp.tif", 1024, 1024, mpp=None, seed=2)


@pytest.fixture(scope="session")
def tiny_slide(slide_dir: Path) -> Path:
    """200 x 150 px at 0.5 um/px: smaller than one 224 px tile."""
    return write_synthetic_slide(slide_dir / "tiny.tif", 200, 150, mpp=0.5, levels=1)

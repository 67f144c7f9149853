"""`python -m slides tile` warns about a slide that gets no tiles and says which option helps."""

from pathlib import Path

import h5py
import pytest

from slides import SAMPLE_SLIDE
from slides.cli import main


def test_blank_slide_warns_no_tissue(
    blank_slide: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["tile", str(blank_slide), "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "warning: blank.tif: 0 tissue tiles" in captured.err
    assert "--min-tissue 0" in captured.err
    assert "1 with none" in captured.out
    with h5py.File(tmp_path / "blank.h5") as f:  # still written: the slide is done
        assert f["coords"].shape == (0, 2)


def test_strict_threshold_suggests_a_looser_one(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    args = [
        "tile",
        str(SAMPLE_SLIDE),
        "--out",
        str(tmp_path),
        "--size",
        "1024",
        "--min-tissue",
        "1",
    ]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "no tile reaches --min-tissue 1.0" in err
    suggested = float(err.split("e.g. --min-tissue ")[1].split(",")[0])
    assert 0 < suggested < 1
    assert main([*args[:-1], str(suggested), "--overwrite"]) == 0
    with h5py.File(tmp_path / "CMU-1-Small-Region.h5") as f:
        assert len(f["coords"]) > 0


def test_slide_smaller_than_a_tile(
    tiny_slide: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["tile", str(tiny_slide), "--out", str(tmp_path)]) == 0
    assert "smaller than one 224 px tile" in capsys.readouterr().err

"""`python -m slides tile` end to end: outputs, skip-if-done, --overwrite, errors, --skip-errors."""

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from slides import SAMPLE_SLIDE, make_grid, open_slide
from slides.cli import main

TRUNCATED_BYTES = 300_000


@pytest.fixture()
def batch(tmp_path: Path, no_mpp_slide: Path) -> Path:
    """A folder: the sample slide, a truncated SVS, and a slide without MPP."""
    folder = tmp_path / "batch"
    folder.mkdir()
    (folder / "good.svs").symlink_to(SAMPLE_SLIDE)
    (folder / "broken.svs").write_bytes(SAMPLE_SLIDE.read_bytes()[:TRUNCATED_BYTES])
    (folder / "nompp.tif").symlink_to(no_mpp_slide)
    return folder


def test_tile_sample_then_skip_then_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out"
    assert (
        main(["tile", str(SAMPLE_SLIDE), "--out", str(out), "--mpp", "0.5", "--size", "224"]) == 0
    )
    h5_path, png_path = out / "CMU-1-Small-Region.h5", out / "CMU-1-Small-Region.png"
    with h5py.File(h5_path, "r") as h5:
        coords = h5["coords"][()]
        assert h5["coords"].attrs["patch_size"] == 224
    np.testing.assert_array_equal(coords, make_grid(open_slide(SAMPLE_SLIDE)).coords)
    with Image.open(png_path) as img:
        assert max(img.size) == 1024
    assert "1 slide(s) tiled" in capsys.readouterr().out

    stamp = h5_path.stat().st_mtime_ns
    os.utime(h5_path, ns=(stamp - 10**9, stamp - 10**9))
    assert main(["tile", str(SAMPLE_SLIDE), "--out", str(out)]) == 0
    assert "1 already done" in capsys.readouterr().out
    assert h5_path.stat().st_mtime_ns == stamp - 10**9

    assert main(["tile", str(SAMPLE_SLIDE), "--out", str(out), "--overwrite", "--size", "112"]) == 0
    assert "1 slide(s) tiled" in capsys.readouterr().out
    with h5py.File(h5_path, "r") as h5:
        assert h5["coords"].attrs["patch_size"] == 112


def test_bad_slide_stops_batch_with_one_line_error(
    batch: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["tile", str(batch), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "error:" in err and "broken.svs" in err and "corrupt" in err
    assert "Traceback" not in err


def test_skip_errors_logs_and_finishes_the_batch(
    batch: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out"
    assert main(["tile", str(batch), "--out", str(out), "--skip-errors"]) == 0
    assert (out / "good.h5").is_file() and (out / "good.png").is_file()
    log = (out / "errors.log").read_text().splitlines()
    assert len(log) == 2
    assert any("broken.svs" in line and "corrupt" in line for line in log)
    assert any("nompp.tif" in line and "--slide-mpp" in line for line in log)
    assert "1 slide(s) tiled" in capsys.readouterr().out


def test_slide_mpp_supplies_missing_resolution(no_mpp_slide: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["tile", str(no_mpp_slide), "--out", str(out), "--slide-mpp", "0.5"]) == 0
    with h5py.File(out / "no_mpp.h5", "r") as h5:
        assert h5["coords"].shape[0] > 0 and h5["coords"].attrs["mpp"] == 0.5


def test_module_entry_point_help_and_exit_code(tmp_path: Path) -> None:
    help_run = subprocess.run(
        [sys.executable, "-m", "slides", "tile", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert help_run.returncode == 0 and "--min-tissue" in help_run.stdout
    missing = subprocess.run(
        [
            sys.executable,
            "-m",
            "slides",
            "tile",
            str(tmp_path / "nope.svs"),
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode == 1
    assert "nope.svs" in missing.stderr and "Traceback" not in missing.stderr

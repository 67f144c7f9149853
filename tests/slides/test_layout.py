"""Coords layouts: `slides tile --layout trident` writes TRIDENT's job layout, and both are read."""

from pathlib import Path

import h5py
import numpy as np
import pytest

from slides import SAMPLE_SLIDE, SlideError, coords_file, find_coords_files, load_grid
from slides.cli import main

STEM = SAMPLE_SLIDE.stem


def test_trident_layout_is_written_skipped_when_done_and_found(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    job = tmp_path / "20x_224px_0px_overlap"
    assert main(["tile", str(SAMPLE_SLIDE), "--out", str(job), "--layout", "trident"]) == 0
    h5_path = job / "patches" / f"{STEM}_patches.h5"
    assert h5_path.is_file() and (job / "visualization" / f"{STEM}.png").is_file()
    assert not (job / f"{STEM}.h5").exists()
    with h5py.File(h5_path, "r") as h5:
        assert h5["coords"].shape[1] == 2 and h5["coords"].attrs["patch_size"] == 224
    assert find_coords_files(job) == {STEM: h5_path}
    capsys.readouterr()
    assert main(["tile", str(SAMPLE_SLIDE), "--out", str(job), "--layout", "trident"]) == 0
    assert "1 already done" in capsys.readouterr().out


def test_flat_layout_is_found_and_wins_over_trident(tmp_path: Path) -> None:
    assert main(["tile", str(SAMPLE_SLIDE), "--out", str(tmp_path), "--size", "112"]) == 0
    trident = coords_file(tmp_path, STEM, "trident")
    trident.parent.mkdir()
    trident.write_bytes(b"")
    (tmp_path / ".hidden.h5").write_bytes(b"")
    found = find_coords_files(tmp_path)
    assert found == {STEM: tmp_path / f"{STEM}.h5"}
    assert len(load_grid(found[STEM]).coords) > 0
    np.testing.assert_array_equal(
        load_grid(found[STEM]).coords, load_grid(tmp_path / f"{STEM}.h5").coords
    )


def test_missing_coords_folder_and_unknown_layout_are_named(tmp_path: Path) -> None:
    with pytest.raises(SlideError, match=r"nowhere.*slides tile"):
        find_coords_files(tmp_path / "nowhere")
    with pytest.raises(SlideError, match=r"'cellpose'.*flat, trident"):
        coords_file(tmp_path, STEM, "cellpose")  # type: ignore[arg-type]

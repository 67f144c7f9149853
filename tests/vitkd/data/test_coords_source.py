"""`data.source.coords`: train from precomputed coords files (ours or TRIDENT's), no tiling."""

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from data_fixtures import SIZE, link_slides, tile

import slides
from vitkd.data.datamodule import DistillDataModule, TileSource


def _module(slides_dir: Path, coords: Path | None, **source) -> DistillDataModule:
    source = {"tile_size": SIZE, "holdout_fraction": 0.1, "holdout_max_tiles": 4, **source}
    return DistillDataModule(
        source=TileSource(
            slides=[str(slides_dir)], coords=None if coords is None else str(coords), **source
        ),
        num_workers=0,
    )


def _tiles(dataset) -> list[tuple[str, tuple[int, int]]]:
    """(slide, level-0 x, y) of every item, without reading pixels."""
    out = []
    for i in range(len(dataset)):
        s, local = dataset.reader.index.locate(dataset.global_index(i))
        grid = dataset.reader.grid(int(s))
        out.append((dataset.reader.index.slides[int(s)].stem, tuple(grid.coords[int(local)])))
    return out


def test_coords_files_replace_tissue_detection(three_slides, monkeypatch) -> None:
    slides_dir, coords = three_slides
    from_tissue = _module(slides_dir, None)
    from_tissue.setup()

    def no_tiling(*args, **kwargs):
        raise AssertionError("tissue detection ran at set-up although coords files exist")

    monkeypatch.setattr(slides, "make_grid", no_tiling)
    monkeypatch.setattr(slides, "detect_tissue", no_tiling)
    dm = _module(slides_dir, coords)
    dm.setup()
    assert [p.stem for p in dm.tile_index.slides] == ["s0", "s1", "s2"]
    assert _tiles(dm.train_tiles) == _tiles(from_tissue.train_tiles)
    assert _tiles(dm.holdout_tiles) == _tiles(from_tissue.holdout_tiles)
    tile, coord = dm.train_tiles[5]
    want = slides.load_grid(coords / "s0.h5")
    assert tile.shape == (SIZE, SIZE, 3) and tile.dtype == np.uint8
    np.testing.assert_array_equal(coord, want.coords[5])
    np.testing.assert_array_equal(tile, slides.GridTiles(slides_dir / "s0.svs", want)[5][0])


def test_trident_job_layout_without_our_attributes(tmp_path, three_slides) -> None:
    slides_dir, flat = three_slides
    job = tile(slides_dir, tmp_path / "job", "--layout", "trident")
    for path in (job / "patches").glob("*_patches.h5"):
        with h5py.File(path, "r+") as h5:  # what TRIDENT writes: no level / mpp of ours
            for key in ("mpp", "target_mpp", "level", "read_size"):
                del h5["coords"].attrs[key]
    dm, ours = _module(slides_dir, job), _module(slides_dir, flat)
    dm.setup()
    ours.setup()
    assert len(dm.train_tiles) == len(ours.train_tiles)
    for i in (0, len(dm.train_tiles) - 1):
        np.testing.assert_array_equal(dm.train_tiles[i][0], ours.train_tiles[i][0])
        torch.testing.assert_close(dm.train_tiles[i][1], ours.train_tiles[i][1])


def test_slide_without_coords_is_named_or_skipped(tmp_path, three_slides, caplog) -> None:
    _, coords = three_slides
    extra = tmp_path / "slides"
    extra.mkdir()
    for name in ("lonely", "s1", "s2"):
        (extra / f"{name}.svs").symlink_to(slides.SAMPLE_SLIDE)
    with pytest.raises(
        slides.SlideError, match=r"lonely\.svs: no coords file.*1 of 3.*slides tile"
    ):
        _module(extra, coords).setup()
    dm = _module(extra, coords, skip_errors=True)
    dm.setup()
    assert [p.stem for p in dm.tile_index.slides] == ["s1", "s2"]
    assert "lonely.svs" in caplog.text
    with pytest.raises(ValueError, match=r"needs data\.source\.slides"):
        DistillDataModule(source=TileSource(coords=str(coords))).setup()


def test_coords_for_another_tile_size_or_mpp_are_refused(three_slides) -> None:
    slides_dir, coords = three_slides
    with pytest.raises(ValueError, match=r"s0\.h5: tiles of 56 px.*tile_size=112"):
        _module(slides_dir, coords, tile_size=112).setup()
    with pytest.raises(ValueError, match=r"s0\.h5: tiles at 0\.5 um/px.*mpp=1"):
        _module(slides_dir, coords, mpp=1.0).setup()


def test_holdout_cap_is_global_and_spread_over_slides(tmp_path) -> None:
    link_slides(tmp_path / "slides", 5)
    coords = tile(tmp_path / "slides", tmp_path / "coords")
    dm = _module(tmp_path / "slides", coords, holdout_fraction=0.5, holdout_max_tiles=10)
    dm.setup()
    held, train = _tiles(dm.holdout_tiles), _tiles(dm.train_tiles)
    assert len(held) == 10  # was 10 per slide: 50
    assert {stem for stem, _ in held} == {f"s{i}" for i in range(5)}  # 2 per slide here
    assert not set(held) & set(train)
    assert len(held) + len(train) == len(dm.tile_index)
    again = _module(tmp_path / "slides", coords, holdout_fraction=0.5, holdout_max_tiles=10)
    again.setup()
    assert _tiles(again.holdout_tiles) == held


def test_coords_file_of_another_slide_is_named_on_read(tmp_path, three_slides) -> None:
    slides_dir, flat = three_slides
    coords = tmp_path / "coords"
    coords.mkdir()
    for path in flat.glob("*.h5"):
        (coords / path.name).write_bytes(path.read_bytes())
    with h5py.File(coords / "s0.h5", "r+") as h5:
        h5["coords"].attrs["level0_width"] = 9999
    dm = _module(slides_dir, coords)
    dm.setup()
    with pytest.raises(slides.SlideError, match=r"s0\.h5: made for a 9999x.*s0\.svs is 2220x"):
        dm.train_tiles[0]

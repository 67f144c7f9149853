"""Every bad input of the issue gives a clear error naming the file and the fix."""

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from slides import (
    SAMPLE_SLIDE,
    CorruptSlideError,
    ImageReadError,
    RandomTissueTiles,
    SlideError,
    SlideNotFoundError,
    TileFolder,
    UnsupportedFormatError,
    find_slides,
    make_grid,
    open_slide,
)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.svs"
    with pytest.raises(SlideNotFoundError, match=r"missing\.svs") as info:
        open_slide(path)
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, ValueError)
    with pytest.raises(SlideNotFoundError, match=r"missing\.svs"):
        find_slides(path)


@pytest.mark.parametrize("keep", [0.05, 0.5, 0.99])
def test_truncated_svs(tmp_path: Path, keep: float) -> None:
    data = SAMPLE_SLIDE.read_bytes()
    path = tmp_path / "truncated.svs"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CorruptSlideError, match=r"truncated\.svs.*corrupt or truncated"):
        make_grid(open_slide(path))


def test_truncated_pyramidal_tiff(tmp_path: Path, pyramid_slide: Path) -> None:
    data = pyramid_slide.read_bytes()
    path = tmp_path / "cut.tif"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptSlideError, match=r"cut\.tif"):
        slide = open_slide(path)
        slide.read_region((0, 0), 0, slide.dimensions)


def test_corrupt_tile_data_fails_on_read(tmp_path: Path, pyramid_slide: Path) -> None:
    data = bytearray(pyramid_slide.read_bytes())
    start = len(data) // 8  # inside level 0's tiles; the header and IFDs stay intact
    data[start : start + 50_000] = bytes(50_000)
    path = tmp_path / "zeroed.tif"
    path.write_bytes(bytes(data))
    slide = open_slide(path)
    assert slide.backend == "openslide"
    with pytest.raises(CorruptSlideError, match=r"zeroed\.tif.*corrupt or truncated"):
        slide.read_region((0, 0), 0, slide.dimensions)


@pytest.mark.parametrize("name", ["garbage.svs", "garbage.ndpi", "garbage.png", "garbage.tif"])
def test_garbage_bytes_with_slide_extension(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(CorruptSlideError, match=name.replace(".", r"\.")):
        open_slide(path).read_region((0, 0), 0, (10, 10))


@pytest.mark.parametrize("name", ["notes.txt", "scan.czi", "noext"])
def test_unsupported_format(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"not a slide")
    with pytest.raises(UnsupportedFormatError, match=rf"{name}.*supported: \.svs"):
        open_slide(path)


def test_folder_is_not_a_slide(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedFormatError, match="is a folder"):
        open_slide(tmp_path)


def test_find_slides_folder_csv_and_empty(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "one.svs").symlink_to(SAMPLE_SLIDE)
    (tmp_path / "two.tif").write_bytes(b"x")
    (tmp_path / "readme.txt").write_text("x")
    (tmp_path / ".hidden.svs").write_bytes(b"x")
    assert [p.name for p in find_slides(tmp_path)] == ["one.svs", "two.tif"]
    assert [p.name for p in find_slides(tmp_path, exclude=[tmp_path / "a"])] == ["two.tif"]
    csv_path = tmp_path / "list.csv"
    csv_path.write_text("id,path\n1,a/one.svs\n2,/abs/three.ndpi\n")
    assert find_slides(csv_path) == [tmp_path / "a" / "one.svs", Path("/abs/three.ndpi")]
    (tmp_path / "empty").mkdir()
    with pytest.raises(SlideError, match="no slides found"):
        find_slides(tmp_path / "empty")


def test_duplicate_slide_names_in_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from slides.cli import main

    for sub in ("x", "y"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "same.svs").symlink_to(SAMPLE_SLIDE)
    assert main(["tile", str(tmp_path), "--out", str(tmp_path / "out")]) == 1
    assert "named 'same'" in capsys.readouterr().err


def test_tile_folder_converts_every_mode(tmp_path: Path) -> None:
    root = tmp_path / "tiles"
    (root / "train" / "tumour").mkdir(parents=True)
    (root / "train" / "normal").mkdir(parents=True)
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 2] = 100
    rgba[:4, :, 3] = 255  # bottom half transparent
    Image.fromarray(rgba).save(root / "train" / "tumour" / "a_rgba.png")
    Image.fromarray(np.full((8, 8), 77, np.uint8)).save(root / "train" / "tumour" / "b_gray.png")
    Image.fromarray(np.full((8, 8), 65535, np.uint16)).save(
        root / "train" / "normal" / "c_gray16.png"
    )
    tifffile.imwrite(
        root / "train" / "normal" / "d_rgb16.tif", np.full((8, 8, 3), 257 * 10, np.uint16)
    )
    Image.fromarray(np.full((8, 8, 3), 9, np.uint8)).save(
        root / "train" / "normal" / "e.jpg", quality=100
    )
    (root / "train" / "normal" / "notes.txt").write_text("ignored")
    dataset = TileFolder(root)
    assert [p.name for p in dataset.paths] == [
        "c_gray16.png",
        "d_rgb16.tif",
        "e.jpg",
        "a_rgba.png",
        "b_gray.png",
    ]
    assert dataset.classes == ["normal", "tumour"] and dataset.labels == [0, 0, 0, 1, 1]
    tiles = [dataset[i][0] for i in range(len(dataset))]
    for tile in tiles:
        assert tile.dtype == np.uint8 and tile.shape == (8, 8, 3)
    assert (tiles[0] == 255).all()
    assert (tiles[1] == 10).all()
    assert abs(int(tiles[2].mean()) - 9) <= 1
    np.testing.assert_array_equal(tiles[3][:4], np.broadcast_to((0, 0, 100), (4, 8, 3)))
    assert (tiles[3][4:] == 255).all()
    assert (tiles[4] == 77).all()
    assert dataset[4][1] == 4
    assert TileFolder(root, transform=lambda t: t.shape)[0] == ((8, 8, 3), 0)


def test_tile_folder_bad_files(tmp_path: Path) -> None:
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    dataset = TileFolder(tmp_path)
    with pytest.raises(ImageReadError, match=r"broken\.png.*corrupt"):
        dataset[0]
    (tmp_path / "empty").mkdir()
    with pytest.raises(SlideError, match="no tile images"):
        TileFolder(tmp_path / "empty")
    with pytest.raises(SlideNotFoundError, match="nowhere"):
        TileFolder(tmp_path / "nowhere")


def test_random_tiles_bad_inputs(tmp_path: Path, blank_slide: Path) -> None:
    with pytest.raises(SlideError, match="no slides given"):
        RandomTissueTiles([])
    with pytest.raises(SlideError, match="no tissue tiles"):
        RandomTissueTiles([blank_slide])
    broken = tmp_path / "broken.svs"
    broken.write_bytes(b"junk")
    with pytest.raises(CorruptSlideError, match=r"broken\.svs"):
        RandomTissueTiles([broken, SAMPLE_SLIDE], size=64)
    dataset = RandomTissueTiles([broken, SAMPLE_SLIDE], size=64, skip_errors=True)
    assert [p.name for p, _ in dataset.skipped] == ["broken.svs"]
    assert len(dataset.slides) == 1

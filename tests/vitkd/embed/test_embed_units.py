"""Building blocks of embedding: the HDF5 writer, sources, the argument parser, the run log."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from slides import SlideError
from vitkd.embed.cli import build_parser, config_from_args
from vitkd.embed.runlog import RunLog, read_log
from vitkd.embed.sources import collect_sources
from vitkd.embed.writer import EmbeddingWriter

COORDS = np.array([[0, 0], [224, 0], [0, 224]], dtype=np.int64)


def test_writer_commits_atomically_with_attributes(tmp_path: Path) -> None:
    path = tmp_path / "a.h5"
    feats = np.arange(3 * 4, dtype=np.float32).reshape(3, 4)
    with EmbeddingWriter(
        path, COORDS, (4,), {"patch_size": 224, "name": "a"}, {"tokens": "cls"}
    ) as w:
        w.write(feats[:2])
        assert not path.exists() and (tmp_path / "a.h5.tmp").exists()
        w.write(feats[2:])
        w.commit()
    assert not (tmp_path / "a.h5.tmp").exists()
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["features"][()], feats)
        np.testing.assert_array_equal(f["coords"][()], COORDS)
        assert f["coords"].dtype == np.int64 and f["features"].dtype == np.float32
        assert f["coords"].attrs["patch_size"] == 224 and f["coords"].attrs["name"] == "a"
        assert f["features"].attrs["tokens"] == "cls"


def test_writer_failure_leaves_no_file_and_keeps_the_old_one(tmp_path: Path) -> None:
    path = tmp_path / "a.h5"
    path.write_bytes(b"previous result")
    with (
        pytest.raises(RuntimeError, match="boom"),
        EmbeddingWriter(path, COORDS, (4,), {}, {}) as w,
    ):
        w.write(np.zeros((2, 4), np.float32))
        raise RuntimeError("boom")
    assert path.read_bytes() == b"previous result"
    assert not (tmp_path / "a.h5.tmp").exists()


def test_writer_failed_rename_keeps_the_old_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "a.h5"
    path.write_bytes(b"previous result")

    def refuse(a: object, b: object) -> None:
        raise PermissionError("read-only target")

    monkeypatch.setattr("slides.atomic.os.replace", refuse)
    with pytest.raises(PermissionError), EmbeddingWriter(path, COORDS, (4,), {}, {}) as w:
        w.write(np.zeros((3, 4), np.float32))
        w.commit()
    assert path.read_bytes() == b"previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.h5"]


def test_writer_refuses_row_count_mismatch(tmp_path: Path) -> None:
    with EmbeddingWriter(tmp_path / "a.h5", COORDS, (4,), {}, {}) as w:
        with pytest.raises(ValueError, match="2 feature rows written for 3 coords"):
            w.write(np.zeros((2, 4), np.float32))
            w.commit()
        with pytest.raises(ValueError, match="5 feature rows"):
            w.write(np.zeros((3, 4), np.float32))
    assert not list(tmp_path.iterdir())


def test_sources_from_folder_csv_and_tile_folder(tmp_path: Path) -> None:
    slides_dir = tmp_path / "wsi"
    (slides_dir / "sub").mkdir(parents=True)
    for name in ("a.svs", "sub/b.ndpi"):
        (slides_dir / name).write_bytes(b"x")
    tiles = tmp_path / "tiles"
    tiles.mkdir()
    (tiles / "t0.png").write_bytes(b"x")
    csv = tmp_path / "list.csv"
    csv.write_text("path\nwsi/a.svs\n")
    sources = collect_sources([slides_dir, csv, tiles])
    assert [(s.name, s.kind) for s in sources] == [
        ("a", "slide"),
        ("b", "slide"),
        ("tiles", "tiles"),
    ]


def test_sources_refuse_two_slides_with_one_output_name(tmp_path: Path) -> None:
    for folder in ("x", "y"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "same.svs").write_bytes(b"x")
    with pytest.raises(SlideError, match=r"same\.h5"):
        collect_sources([tmp_path / "x", tmp_path / "y"])


def test_parser_builds_a_config_and_rejects_bad_values(tmp_path: Path) -> None:
    parser = build_parser()
    args = parser.parse_args(
        ["s.svs", "--model", "h0-mini", "--out", str(tmp_path), "--tokens", "cls+mean"]
    )
    cfg = config_from_args(args)
    assert cfg.tokens == "cls+mean" and cfg.size is None and cfg.mpp == 0.5 and cfg.devices == 1
    with pytest.raises(ValueError, match="--batch-size must be >= 1"):
        config_from_args(
            parser.parse_args(["s", "--model", "m", "--out", "o", "--batch-size", "0"])
        )
    with pytest.raises(SystemExit):
        parser.parse_args(["s", "--model", "m", "--out", "o", "--tokens", "mean"])


def test_run_log_appends_json_lines(tmp_path: Path) -> None:
    RunLog(tmp_path, "r1").record("a", "done", tiles=3)
    RunLog(tmp_path, "r2", rank=1).record("b", "error", reason="bad")
    records = read_log(tmp_path)
    assert [(r["run"], r["rank"], r["slide"], r["status"]) for r in records] == [
        ("r1", 0, "a", "done"),
        ("r2", 1, "b", "error"),
    ]
    assert records[0]["tiles"] == 3 and records[1]["reason"] == "bad"

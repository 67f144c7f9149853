"""Resumable and atomic: finished shards are skipped, a failed shard leaves nothing, nothing
cached is rewritten by a build that asks for other settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from cache_fixtures import TEACHER, build

from vitkd.cache import CacheMismatchError
from vitkd.cache import builder as builder_module
from vitkd.cache.dataset import CacheTiles
from vitkd.embed.lock import SlideLock


def _stamps(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.iterdir())}


def test_rerun_skips_finished_shards(cache_copy: Path, slide_dir: Path) -> None:
    before = _stamps(cache_copy)
    (cache_copy / "shard-00001.h5").unlink()
    summary = build(slide_dir, cache_copy)
    assert [p.name for p in summary.written] == ["shard-00001.h5"]
    assert sorted(p.name for p in summary.existed) == ["shard-00000.h5", "shard-00002.h5"]
    after = _stamps(cache_copy)
    for name in ("shard-00000.h5", "shard-00002.h5", "manifest.json"):
        assert after[name] == before[name]  # untouched
    assert after["shard-00001.h5"][1] == before["shard-00001.h5"][1]  # rebuilt the same bytes
    assert len(CacheTiles(cache_copy)) == 20


def test_a_failing_shard_leaves_no_partial_file(
    tmp_path: Path, slide_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}
    real = builder_module.encode_tile

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 8 + 8 + 3:  # the cost sample (8), shard 0 (8 tiles), into shard 1
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(builder_module, "encode_tile", failing)
    out = tmp_path / "c"
    with pytest.raises(KeyboardInterrupt):
        build(slide_dir, out, batch_size=2)
    names = sorted(p.name for p in out.iterdir())
    assert names == ["manifest.json", "shard-00000.h5"]  # no shard-00001.h5, no .tmp, no lock
    monkeypatch.setattr(builder_module, "encode_tile", real)
    summary = build(slide_dir, out)
    assert [p.name for p in summary.existed] == ["shard-00000.h5"]
    assert len(summary.written) == 2 and len(CacheTiles(out)) == 20


def test_a_stale_tmp_file_is_replaced(cache_copy: Path, slide_dir: Path) -> None:
    (cache_copy / "shard-00002.h5").unlink()
    (cache_copy / "shard-00002.h5.tmp").write_bytes(b"left by a killed build")
    build(slide_dir, cache_copy)
    assert not (cache_copy / "shard-00002.h5.tmp").exists()
    assert len(CacheTiles(cache_copy)) == 20


def test_a_locked_shard_is_left_to_its_holder(cache_copy: Path, slide_dir: Path) -> None:
    (cache_copy / "shard-00001.h5").unlink()
    with SlideLock(cache_copy / "shard-00001.h5") as lock:
        assert lock.acquire()
        summary = build(slide_dir, cache_copy)
    assert [p.name for p in summary.locked] == ["shard-00001.h5"]
    assert not (cache_copy / "shard-00001.h5").exists()


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"encoding": "jpeg"}, "image.encoding"),
        ({"patch_tokens": 8}, "patch_tokens"),
        ({"seed": 3}, "seed"),
        (
            {"model": {"teacher": {**TEACHER, "kwargs": {**TEACHER["kwargs"], "embed_dim": 32}}}},
            "fingerprint",
        ),
    ],
)
def test_other_settings_never_touch_the_cache(
    cache_copy: Path, slide_dir: Path, change: dict, named: str
) -> None:
    before = _stamps(cache_copy)
    with pytest.raises(CacheMismatchError, match=named) as err:
        build(slide_dir, cache_copy, **change)
    assert "Nothing was changed" in str(err.value)
    assert _stamps(cache_copy) == before

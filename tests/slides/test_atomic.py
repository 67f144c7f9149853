"""The atomic-write helper: a failed write keeps the old file and leaves no temporary file."""

import os
from pathlib import Path

import pytest

from slides import atomic
from slides.atomic import atomic_path, temp_sibling, write_text_atomic


def test_success_replaces_the_file_and_fsyncs_before_the_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "sub" / "results.json"
    calls: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd)))
    monkeypatch.setattr(
        atomic.os, "replace", lambda a, b: (calls.append("replace"), real_replace(a, b))
    )
    write_text_atomic(path, "old")
    write_text_atomic(path, "new ü")
    assert path.read_text(encoding="utf-8") == "new ü"
    assert calls == ["fsync", "replace"] * 2
    assert sorted(p.name for p in path.parent.iterdir()) == ["results.json"]


def test_temp_is_a_hidden_sibling_that_keeps_the_suffix(tmp_path: Path) -> None:
    tmp = temp_sibling(tmp_path / "features.npy")
    assert tmp.parent == tmp_path and tmp.name.startswith(".") and tmp.suffix == ".npy"
    assert ".tmp" in tmp.name


@pytest.mark.parametrize("error", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_failing_write_keeps_the_old_file_and_leaves_no_temp(
    tmp_path: Path, error: BaseException
) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"previous")
    with pytest.raises(type(error)), atomic_path(path) as tmp:
        tmp.write_bytes(b"half writ")
        raise error
    assert path.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]


def test_failing_rename_leaves_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(a: object, b: object) -> None:
        raise PermissionError("read-only target")

    monkeypatch.setattr(atomic.os, "replace", refuse)
    with pytest.raises(PermissionError):
        write_text_atomic(tmp_path / "a.txt", "x")
    assert list(tmp_path.iterdir()) == []


def test_writer_that_never_creates_the_temp_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError), atomic_path(tmp_path / "a.txt"):
        pass
    assert list(tmp_path.iterdir()) == []

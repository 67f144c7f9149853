"""Killed runs resume to the same files; finished slides are skipped; locks keep writers apart."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import make_cfg

from vitkd.embed import run
from vitkd.embed.errors import SlideFailedError
from vitkd.embed.lock import SlideLock
from vitkd.embed.runlog import read_log
from vitkd.embed.writer import EmbeddingWriter


class _Killed(BaseException):
    """Stands in for the process dying: not an Exception, so nothing catches it."""


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _contents(path: Path) -> dict:
    out = {}
    with h5py.File(path, "r") as f:
        for name, dset in f.items():
            attrs = {
                k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in dset.attrs.items()
            }
            out[name] = (dset[()].tolist(), attrs)
    return out


def _assert_same_outputs(a: Path, b: Path, names: list[str]) -> None:
    for name in names:
        assert _contents(a / f"{name}.h5") == _contents(b / f"{name}.h5"), name
        # HDF5 stores no timestamps here, so a resumed run reproduces the very bytes.
        assert (a / f"{name}.h5").read_bytes() == (b / f"{name}.h5").read_bytes(), name


def test_killed_run_resumes_to_identical_files(
    three_slides: list[Path], tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = tmp_path / "reference"
    run(make_cfg(three_slides, tiny_model_dir, reference, batch_size=4))

    out = tmp_path / "killed"
    real_write, real_release = EmbeddingWriter.write, SlideLock.release

    def dying_write(self: EmbeddingWriter, features: np.ndarray) -> None:
        real_write(self, features)
        if self.path.stem == "s1":
            raise _Killed  # after the first batch of the second slide has been written

    def killed_release(self: SlideLock) -> None:
        if "s1" not in self.path.name:
            return real_release(self)
        self._lock.release()  # what the kernel does for a killed process; the file stays

    # A killed process cleans nothing up: no abort of the .tmp, no removal of the lock file.
    monkeypatch.setattr(EmbeddingWriter, "write", dying_write)
    monkeypatch.setattr(EmbeddingWriter, "abort", lambda self: None)
    monkeypatch.setattr(SlideLock, "release", killed_release)
    with pytest.raises(_Killed):
        run(make_cfg(three_slides, tiny_model_dir, out, batch_size=4))
    monkeypatch.undo()

    assert (out / "s0.h5").is_file()
    assert not (out / "s1.h5").exists() and not (out / "s2.h5").exists()
    assert (out / "s1.h5.tmp").is_file() and (out / "s1.h5.lock").is_file()

    summary = run(make_cfg(three_slides, tiny_model_dir, out, batch_size=4))
    assert summary.existed == ["s0"] and summary.done == ["s1", "s2"]
    assert sorted(p.name for p in out.iterdir()) == ["embed_log.jsonl", "s0.h5", "s1.h5", "s2.h5"]
    _assert_same_outputs(reference, out, ["s0", "s1", "s2"])
    statuses = [(r["slide"], r["status"]) for r in read_log(out)]
    assert statuses == [("s0", "done"), ("s0", "exists"), ("s1", "done"), ("s2", "done")]


def test_slide_locked_by_a_live_process_is_left_alone(
    three_slides: list[Path], tiny_model_dir: Path, tmp_path: Path
) -> None:
    holder = SlideLock(tmp_path / "s0.h5")
    assert holder.acquire()
    summary = run(make_cfg(three_slides[:2], tiny_model_dir, tmp_path))
    assert summary.locked == ["s0"] and summary.done == ["s1"]
    assert not (tmp_path / "s0.h5").exists()
    assert (tmp_path / "s0.h5.lock").exists()
    holder.release()


def test_lock_file_of_a_dead_process_is_taken_at_once(tmp_path: Path) -> None:
    """A killed holder's lock file stays, but holds nothing: no staleness to wait for."""
    target = tmp_path / "x.h5"
    code = (
        "import os, signal, sys; from pathlib import Path; from vitkd.embed.lock import SlideLock;"
        f"assert SlideLock(Path({str(target)!r})).acquire(); os.kill(os.getpid(), signal.SIGKILL)"
    )
    proc = subprocess.run([sys.executable, "-c", code], check=False)
    assert proc.returncode == -signal.SIGKILL
    assert (tmp_path / "x.h5.lock").exists()
    lock = SlideLock(target)
    assert lock.acquire()
    assert not SlideLock(target).acquire()  # now held by this live process
    lock.release()


def test_existing_file_from_another_model_is_refused_unless_overwrite(
    three_slides: list[Path], tiny_model_dir: Path, tmp_path: Path
) -> None:
    run(make_cfg(three_slides[:1], tiny_model_dir, tmp_path, tokens="cls"))
    with pytest.raises(SlideFailedError, match=r"tokens='cls'.*--overwrite"):
        run(make_cfg(three_slides[:1], tiny_model_dir, tmp_path, tokens="cls+mean"))
    summary = run(
        make_cfg(three_slides[:1], tiny_model_dir, tmp_path, tokens="cls+mean", overwrite=True)
    )
    assert summary.done == ["s0"]
    with h5py.File(tmp_path / "s0.h5", "r") as f:
        assert f["features"].shape[1] == 128


@pytest.mark.slow
def test_sigkilled_cli_resumes_to_identical_files(
    three_slides: list[Path], tiny_model_dir: Path, tmp_path: Path
) -> None:
    reference = tmp_path / "reference"
    run(make_cfg(three_slides, tiny_model_dir, reference, batch_size=1))
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "vitkd.embed",
        *map(str, three_slides),
        "--model",
        str(tiny_model_dir),
    ]
    cmd += [
        "--out",
        str(out),
        "--mpp",
        "1",
        "--min-tissue",
        "0.25",
        "--batch-size",
        "1",
        "--workers",
        "0",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not (out / "s1.h5.tmp").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "s2.h5").exists(), "the run finished before it could be killed"
    run(make_cfg(three_slides, tiny_model_dir, out, batch_size=1))
    assert not list(out.glob("*.tmp")) and not list(out.glob("*.lock"))
    _assert_same_outputs(reference, out, ["s0", "s1", "s2"])

"""SlideLock under contention: processes racing for one slide never hold it together."""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from pathlib import Path

from vitkd.embed.lock import SlideLock


def _contend(target: str, marker: str, until: float, out: mp.Queue) -> None:
    taken = overlaps = 0
    while time.time() < until:
        lock = SlideLock(Path(target))
        if not lock.acquire():
            continue
        taken += 1
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            overlaps += 1  # someone else holds the slide too
        else:
            os.close(fd)
            time.sleep(0.002)
            os.unlink(marker)
        lock.release()
    out.put((taken, overlaps))


def test_racing_processes_never_overlap(tmp_path: Path) -> None:
    target = tmp_path / "slide.h5"
    # a lock file left by a killed process: the case where breaking a stale lock used to race
    (tmp_path / "slide.h5.lock").write_text('{"pid": 1, "host": "elsewhere", "started": 0}')
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    until = time.time() + 1.5
    procs = [
        ctx.Process(target=_contend, args=(str(target), str(tmp_path / "inside"), until, out))
        for _ in range(6)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=30) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert sum(t for t, _ in results) > 20  # the lock was really contended and passed around
    assert sum(o for _, o in results) == 0


def test_release_removes_the_lock_file(tmp_path: Path) -> None:
    target = tmp_path / "slide.h5"
    lock = SlideLock(target)
    assert lock.acquire()
    assert (tmp_path / "slide.h5.lock").exists()
    lock.release()
    assert not (tmp_path / "slide.h5.lock").exists()
    lock.clear_if_stale()  # nothing to clear: no error

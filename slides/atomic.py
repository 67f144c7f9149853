"""Write files under a temporary sibling name and rename them into place only when complete."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


def temp_sibling(path: str | Path) -> Path:
    """The hidden temporary name `path` is written under before its rename.

    Same folder, so `os.replace` is an atomic rename on one file system; the process id keeps
    two writers of the same file apart; the suffix is kept because writers such as `np.save`,
    `savefig` and PIL choose (or append) the format from it.
    """
    path = Path(path)
    return path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")


def fsync_replace(tmp: str | Path, path: str | Path) -> Path:
    """Flush the finished `tmp` to disk, then rename it onto `path` (atomic on POSIX)."""
    # Without the fsync a crash soon after the rename can leave `path` empty on ext4/xfs.
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return Path(path)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling path to write; on success it replaces `path`.

    On any exception (including KeyboardInterrupt) the temporary file is deleted and `path`
    keeps its old content, or stays absent. Parent folders are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path)
    try:
        yield tmp
        fsync_replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` through a temporary sibling and an atomic rename."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write `text` (UTF-8) to `path` through a temporary sibling and an atomic rename."""
    return write_bytes_atomic(path, text.encode("utf-8"))

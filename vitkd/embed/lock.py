"""Per-slide lock files so two processes (or two runs) never write the same embedding file."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

from filelock import FileLock, Timeout

LOCK_SUFFIX = ".lock"


def lock_path_for(path: Path) -> Path:
    """The lock file guarding a slide's output file."""
    return path.with_name(path.name + LOCK_SUFFIX)


class SlideLock:
    """A non-blocking exclusive lock on one output file, held with ``filelock.FileLock``.

    On POSIX this is ``flock`` on ``<output>.lock``: the kernel drops it when the holder exits or
    is killed, so there is no stale lock to judge and none to break (breaking one by renaming it
    could take away a peer's fresh lock, and then two processes wrote the same slide). Where the
    filesystem has no ``flock``, filelock falls back to its soft lock, which reclaims a crashed
    holder's lock on the same host. A lock file left by a killed process holds nothing.
    """

    def __init__(self, target: Path) -> None:
        self.target = Path(target)
        self.path = lock_path_for(self.target)
        self._lock = FileLock(self.path, timeout=0, thread_local=False)
        self.held = False

    def acquire(self) -> bool:
        """Take the lock; False when another process (or another SlideLock) holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            return False
        self.held = True
        return True

    def release(self) -> None:
        """Delete the lock file and release the lock."""
        if not self.held:
            return
        # Unlinked while still held: a peer that opened the old file and gets its flock after
        # this release sees a link count of 0 and retries on the new file (filelock >= 4.3).
        self.path.unlink(missing_ok=True)
        self._lock.release()
        self.held = False

    def clear_if_stale(self) -> None:
        """Remove a lock file nobody holds (left by a process killed after writing its output)."""
        if self.path.exists() and self.acquire():
            self.release()

    def __enter__(self) -> SlideLock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

"""Per-slide lock files so two processes (or two runs) never write the same embedding file."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path
from types import TracebackType

LOCK_SUFFIX = ".lock"
HEARTBEAT_S = 30.0
STALE_AFTER_S = 600.0


def lock_path_for(path: Path) -> Path:
    """The lock file guarding a slide's output file."""
    return path.with_name(path.name + LOCK_SUFFIX)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def _read_owner(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def lock_is_stale(path: Path, stale_after: float = STALE_AFTER_S) -> bool:
    """True when the lock's owner is gone: a dead pid on this host, or no heartbeat for a while.

    The owner touches the lock every `HEARTBEAT_S` seconds from a background thread, so a lock
    whose mtime is older than `stale_after` belongs to a killed process on any host, however long
    one batch takes. An unreadable (half-written) lock is judged by its age alone.
    """
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return True
    if age > stale_after:
        return True
    owner = _read_owner(path)
    if owner and owner.get("host") == socket.gethostname() and isinstance(owner.get("pid"), int):
        return not _pid_alive(owner["pid"])
    return False


class SlideLock:
    """An exclusive lock on one output file, created with O_CREAT | O_EXCL.

    `acquire()` returns False when a live process holds it; a stale lock (see `lock_is_stale`) is
    moved aside and taken over. While held, a daemon thread refreshes the lock's mtime.
    """

    def __init__(self, target: Path, stale_after: float = STALE_AFTER_S) -> None:
        self.path = lock_path_for(Path(target))
        self.stale_after = stale_after
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.held = False

    def _try_create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        with os.fdopen(fd, "w") as f:
            json.dump(owner, f)
        return True

    def _break_stale(self) -> None:
        # Renaming is atomic: of two processes breaking the same stale lock only one succeeds,
        # and the loser simply retries the exclusive create.
        aside = self.path.with_name(f"{self.path.name}.stale.{os.getpid()}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        aside.unlink(missing_ok=True)

    def clear_if_stale(self) -> None:
        """Remove a lock left by a process killed after it finished its file (and before unlinking)."""
        if self.path.exists() and lock_is_stale(self.path, self.stale_after):
            self._break_stale()

    def acquire(self) -> bool:
        """Take the lock; False when another live process holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            if self._try_create():
                self.held = True
                self._start_heartbeat()
                return True
            if not lock_is_stale(self.path, self.stale_after):
                return False
            self._break_stale()
        return False

    def _start_heartbeat(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name="vitkd-embed-lock", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                os.utime(self.path)
            except FileNotFoundError:
                return

    def release(self) -> None:
        """Stop the heartbeat and delete the lock file."""
        if not self.held:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.path.unlink(missing_ok=True)
        self.held = False

    def __enter__(self) -> SlideLock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

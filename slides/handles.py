"""A bounded, per-process pool of open slides sharing one OpenSlide tile cache."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import openslide

from slides.slide import Slide, open_slide

# an OpenSlide handle costs ~0.9 MB after one read, plus its own 32 MiB tile cache by default;
# a worker touching 10^4 slides would keep them all open
DEFAULT_MAX_OPEN = 32
DEFAULT_CACHE_BYTES = 64 * 1024 * 1024


class SlideHandles:
    """At most `max_open` open slides in this process; the least recently used is closed first.

    OpenSlide slides opened here share one `openslide.OpenSlideCache` of `cache_bytes` instead of
    a cache each, so memory is bounded by `max_open` handles plus one cache. The pool belongs to
    the process that filled it: after pickling or a fork it starts empty (a DataLoader worker
    opens its own handles).

    Args:
        max_open: most slides kept open at once.
        cache_bytes: size of the shared OpenSlide tile cache (0: no tile caching).
    """

    def __init__(
        self, max_open: int = DEFAULT_MAX_OPEN, cache_bytes: int = DEFAULT_CACHE_BYTES
    ) -> None:
        if max_open < 1:
            raise ValueError(f"max_open must be >= 1 open slide, got {max_open}")
        if cache_bytes < 0:
            raise ValueError(f"cache_bytes must be >= 0, got {cache_bytes}")
        self.max_open = max_open
        self.cache_bytes = cache_bytes
        self._reset()

    def _reset(self) -> None:
        self._open: OrderedDict[tuple[str, float | None], Slide] = OrderedDict()
        self._cache: openslide.OpenSlideCache | None = None
        self._pid = os.getpid()
        self._lock = threading.Lock()

    def get(self, path: str | Path, mpp: float | None = None) -> Slide:
        """The open slide at `path` (opened now if needed, closing the least recently used)."""
        if self._pid != os.getpid():
            self._reset()  # a forked child: the parent's handles are not ours to use or close
        key = (str(path), mpp)
        with self._lock:
            slide = self._open.get(key)
            if slide is not None:
                self._open.move_to_end(key)
                return slide
            if self._cache is None and self.cache_bytes > 0:
                self._cache = openslide.OpenSlideCache(self.cache_bytes)
            slide = open_slide(path, mpp=mpp, cache=self._cache)
            self._open[key] = slide
            while len(self._open) > self.max_open:
                _, evicted = self._open.popitem(last=False)
                evicted.close()
            return slide

    def __len__(self) -> int:
        """Slides open now in this process."""
        return len(self._open) if self._pid == os.getpid() else 0

    def close(self) -> None:
        """Close every slide this process opened here."""
        if self._pid == os.getpid():
            for slide in self._open.values():
                slide.close()
        self._reset()

    def __getstate__(self) -> dict[str, Any]:
        return {"max_open": self.max_open, "cache_bytes": self.cache_bytes}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.max_open = state["max_open"]
        self.cache_bytes = state["cache_bytes"]
        self._reset()

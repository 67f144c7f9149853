"""The per-run JSON-lines log of what happened to every slide (`<out>/embed_log.jsonl`)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

LOG_NAME = "embed_log.jsonl"


class RunLog:
    """Appends one JSON object per slide outcome; every run and rank shares the same file.

    Each record is written with a single `write` on an O_APPEND descriptor, so lines from
    concurrent ranks never interleave.

    Args:
        out_dir: the embedding output folder.
        run_id: identifies the run (all ranks of one invocation share it).
        rank: the process' rank under `--devices N`.
    """

    def __init__(self, out_dir: str | os.PathLike, run_id: str, rank: int = 0) -> None:
        self.path = Path(out_dir) / LOG_NAME
        self.run_id = run_id
        self.rank = rank

    def record(self, slide: str, status: str, **fields: Any) -> None:
        """Log one slide outcome: status is `done`, `exists`, `locked` or `error`."""
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "run": self.run_id,
            "rank": self.rank,
            "slide": slide,
            "status": status,
            **fields,
        }
        line = (json.dumps(entry, default=str) + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)


def read_log(out_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """All records of `<out_dir>/embed_log.jsonl` (empty when there is none)."""
    path = Path(out_dir) / LOG_NAME
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

"""The error a failed slide raises, with a one-line reason instead of a traceback wall."""

from __future__ import annotations

from pathlib import Path


class SlideFailedError(RuntimeError):
    """Embedding one slide failed; the message names the slide, its path and the reason.

    Args:
        name: the slide's output name.
        path: the slide file or tile folder.
        reason: one line saying what went wrong.
    """

    def __init__(self, name: str, path: Path, reason: str) -> None:
        super().__init__(f"slide {name!r} ({path}): {reason}")
        self.name = name
        self.path = path
        self.reason = reason


def describe_error(err: BaseException) -> str:
    """`Type: message` on one line; for DataLoader-worker errors, the worker's own last line.

    DataLoader re-raises a worker's exception with the worker traceback pasted into the message,
    so the meaningful part is the final `Type: message` line of that text.
    """
    text = str(err).strip()
    if "Original Traceback" in text:
        lines = [line for line in text.splitlines() if line.strip()]
        return lines[-1].strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(err).__name__}: {first}" if first else type(err).__name__

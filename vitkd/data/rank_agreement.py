"""Every rank trains on the same slides: per-slide tile counts are compared across ranks."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch.distributed as dist

import slides

log = logging.getLogger(__name__)

FAILED = -1
# failure messages each rank sends (the counts of every slide are always sent)
_MESSAGES_PER_RANK = 20


def world() -> tuple[int, int]:
    """(world size, rank) of the default process group, (1, 0) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def _gather(counts: np.ndarray, errors: dict[int, str]) -> list[tuple[np.ndarray, dict[int, str]]]:
    size, _ = world()
    mine = (counts, dict(list(errors.items())[:_MESSAGES_PER_RANK]))
    if size == 1:
        return [mine]
    gathered: list = [None] * size
    dist.all_gather_object(gathered, mine)
    return gathered


def agree_on_counts(
    counts: np.ndarray, errors: dict[int, str], paths: Sequence[Path], skip_errors: bool
) -> np.ndarray:
    """The per-slide tile counts every rank uses, from this rank's (`FAILED` where unreadable).

    Every rank must call this (a collective under `torch.distributed`). A slide that failed on
    any rank is left out on every rank when `skip_errors` (with a warning naming the ranks: a
    transient read failure no longer changes one rank's data silently), and stops every rank
    otherwise. Ranks that read different counts for the same slide stop every rank.

    Args:
        counts: this rank's tiles per slide, `FAILED` for slides it could not read.
        errors: this rank's failure message per failed slide.
        paths: the slides (the same list on every rank).
        skip_errors: leave out failed slides instead of stopping.

    Raises:
        slides.SlideError: a slide failed without `skip_errors`, or ranks disagree.
    """
    gathered = _gather(np.asarray(counts, np.int64), errors)
    table = np.stack([c for c, _ in gathered])  # (ranks, slides)
    if table.shape[1] != len(paths):
        raise slides.SlideError(
            f"the ranks list different numbers of slides ({sorted(set(len(c) for c, _ in gathered))}); "
            "data.source.slides must resolve to the same files on every rank"
        )
    failed = (table == FAILED).any(axis=0)
    if failed.any():
        lines = []
        for s in np.flatnonzero(failed)[:5]:
            ranks = np.flatnonzero(table[:, s] == FAILED).tolist()
            message = next((e[int(s)] for _, e in gathered if int(s) in e), "")
            lines.append(f"{paths[s]} (rank(s) {ranks}): {message}")
        more = f" and {int(failed.sum()) - len(lines)} more" if failed.sum() > len(lines) else ""
        summary = f"{int(failed.sum())} slide(s) could not be read: " + "; ".join(lines) + more
        if not skip_errors:
            raise slides.SlideError(
                summary + ". Fix or remove them, or set data.source.skip_errors: true"
            )
        partial = failed & (table != FAILED).any(axis=0)
        log.warning(
            "%s. Left out on every rank%s",
            summary,
            f" ({int(partial.sum())} failed on some ranks only, e.g. a transient read error: "
            "left out everywhere so every rank sees the same tiles)"
            if partial.any()
            else "",
        )
    readable = ~failed
    differ = readable & (table.min(axis=0) != table.max(axis=0))
    if differ.any():
        s = int(np.flatnonzero(differ)[0])
        raise slides.SlideError(
            f"{paths[s]}: ranks see different tile counts {table[:, s].tolist()} (by rank); "
            "every rank must read the same slides and coords files (a shared filesystem, "
            "no file rewritten while the run starts)"
        )
    return np.where(failed, FAILED, table[0])

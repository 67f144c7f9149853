"""Embed a list of sources in one process: skip finished ones, lock, stream tiles, write, log."""

from __future__ import annotations

import json
import logging
import os
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

import vitkd
from vitkd.embed.config import EmbedConfig
from vitkd.embed.embedder import Embedder
from vitkd.embed.errors import SlideFailedError, describe_error
from vitkd.embed.lock import SlideLock
from vitkd.embed.resolve import ResolvedModel
from vitkd.embed.runlog import RunLog
from vitkd.embed.sources import Source
from vitkd.embed.tiles import TileJob, prepare_job
from vitkd.embed.writer import EmbeddingWriter, read_attrs

log = logging.getLogger(__name__)

# Attributes that must match for an existing file to count as this run's result.
_IDENTITY_ATTRS = ("encoder", "tokens", "weights_sha256", "mpp", "patch_size", "dim")


@dataclass
class RunSummary:
    """What one process did: slide names per outcome."""

    done: list[str] = field(default_factory=list)
    existed: list[str] = field(default_factory=list)
    locked: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    tiles: int = 0


def output_path(out: Path, source: Source) -> Path:
    """`<out>/<slide name>.h5`."""
    return Path(out) / f"{source.name}.h5"


def features_attrs(
    resolved: ResolvedModel, cfg: EmbedConfig, size: int, source: Source
) -> dict[str, object]:
    """Provenance attributes stored on `features` (no `mpp` for tile folders: it is unknown)."""
    attrs: dict[str, object] = {
        "encoder": resolved.encoder,
        "tokens": cfg.tokens,
        "vitkd_version": vitkd.__version__,
        "weights_sha256": resolved.weights_sha256,
        "patch_size": int(size),
        "encoder_spec": json.dumps(resolved.backbone.spec.to_dict(), sort_keys=True),
    }
    if cfg.dim is not None:  # absent for full-width runs, as in files written before --dim
        attrs["dim"] = int(cfg.dim)
    if resolved.sizes:
        attrs["matryoshka"] = list(resolved.sizes)
    # Where the weights came from, so files of different runs can be told apart later.
    for key, value in (
        ("encoder_arch", resolved.arch),
        ("encoder_path", resolved.origin),
        ("encoder_role", resolved.role),
    ):
        if value:
            attrs[key] = value
    if source.kind == "slide":
        attrs["mpp"] = float(cfg.mpp)
    return attrs


def _plain(value: object) -> object:
    """An HDF5 attribute as the Python value it was written from (for messages)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _same(have: object, want: object) -> bool:
    if isinstance(have, bytes):
        have = have.decode()
    if isinstance(have, np.generic):
        have = have.item()
    if isinstance(want, float) and isinstance(have, int | float):
        return bool(np.isclose(have, want, rtol=1e-6))
    return have == want


def _check_existing(path: Path, expected: dict[str, object]) -> None:
    """Refuse to keep a finished file that another model, token mode or tiling produced."""
    found = read_attrs(path).get("features", {})
    diffs = [
        f"{key}={_plain(found.get(key))!r} (this run: {expected.get(key)!r})"
        for key in _IDENTITY_ATTRS
        # `dim` is written only for truncated runs: its absence means the full width
        if (key in expected or key == "dim") and not _same(found.get(key), expected.get(key))
    ]
    if diffs:
        raise ValueError(
            f"{path} already exists with {', '.join(diffs)}; pass --overwrite to recompute it "
            "or choose another --out folder."
        )


def _loader(job: TileJob, cfg: EmbedConfig, device: torch.device) -> DataLoader:
    return DataLoader(
        job.dataset,
        batch_size=cfg.batch_size,
        shuffle=False,
        num_workers=cfg.workers,
        pin_memory=device.type == "cuda",
        drop_last=False,
    )


def embed_job(
    job: TileJob, embedder: Embedder, writer: EmbeddingWriter, cfg: EmbedConfig, position: int = 1
) -> None:
    """Stream one job's tiles through the model into the writer, in coords order.

    The host copy of batch k is written after batch k+1 is queued, so on CUDA the device keeps
    computing while the previous features are copied out and written.
    """
    if job.n == 0:
        return
    pending: deque[tuple[torch.Tensor, torch.cuda.Event | None]] = deque()
    cuda = embedder.device.type == "cuda"
    start = 0
    with tqdm(total=job.n, desc=job.name, unit="tile", leave=False, position=position) as bar:
        for tiles, coords in _loader(job, cfg, embedder.device):
            end = start + len(tiles)
            if not np.array_equal(coords.numpy(), job.coords[start:end]):
                raise RuntimeError(f"{job.name}: tiles came back out of order at row {start}")
            feats = embedder(tiles).to("cpu", non_blocking=cuda)
            event = None
            if cuda:
                event = torch.cuda.Event()
                event.record()
            pending.append((feats, event))
            if len(pending) > 1:
                _flush_one(pending, writer)
            start = end
            bar.update(len(tiles))
        while pending:
            _flush_one(pending, writer)


def _flush_one(pending: deque, writer: EmbeddingWriter) -> None:
    feats, event = pending.popleft()
    if event is not None:
        event.synchronize()
    writer.write(feats.numpy())


def embed_source(
    source: Source,
    resolved: ResolvedModel,
    embedder: Embedder,
    cfg: EmbedConfig,
    run_log: RunLog,
    summary: RunSummary,
) -> None:
    """Embed one source unless it is finished or locked; errors propagate as SlideFailedError."""
    path = output_path(cfg.out, source)
    size = cfg.size or resolved.backbone.spec.img_size
    attrs = features_attrs(resolved, cfg, size, source)
    try:
        lock = SlideLock(path)
        if path.exists() and not cfg.overwrite:
            _check_existing(path, attrs)
            lock.clear_if_stale()
            summary.existed.append(source.name)
            run_log.record(source.name, "exists", path=str(source.path), reason="output exists")
            return
        if not lock.acquire():
            summary.locked.append(source.name)
            run_log.record(source.name, "locked", path=str(source.path), reason=f"{lock.path} held")
            return
        with lock:
            # Another process may have finished it between the check above and the lock.
            if path.exists() and not cfg.overwrite:
                _check_existing(path, attrs)
                summary.existed.append(source.name)
                run_log.record(source.name, "exists", path=str(source.path), reason="output exists")
                return
            t0 = time.perf_counter()
            job = prepare_job(source, cfg, size)
            shape = embedder.feature_shape(size)
            with EmbeddingWriter(
                path, job.coords, shape, job.coords_attrs, attrs, extra=job.extra
            ) as writer:
                embed_job(job, embedder, writer, cfg, position=2 * run_log.rank + 1)
                writer.commit()
            seconds = time.perf_counter() - t0
    except Exception as err:
        summary.failed.append(source.name)
        reason = describe_error(err)
        run_log.record(source.name, "error", path=str(source.path), reason=reason)
        raise SlideFailedError(source.name, source.path, reason) from err
    summary.done.append(source.name)
    summary.tiles += job.n
    run_log.record(
        source.name, "done", path=str(source.path), tiles=job.n, seconds=round(seconds, 3)
    )


def embed_sources(
    sources: list[Source],
    resolved: ResolvedModel,
    cfg: EmbedConfig,
    device: torch.device,
    run_log: RunLog,
) -> RunSummary:
    """Embed every source in order with one model on one device.

    Raises:
        SlideFailedError: a source failed and `cfg.skip_errors` is off.
    """
    embedder = Embedder(resolved.backbone, device, cfg.tokens, cfg.precision, cfg.dim)
    embedder.check_size(cfg.size or resolved.backbone.spec.img_size)
    summary = RunSummary()
    desc = "slides" if cfg.devices == 1 else f"slides[{run_log.rank}]"
    for source in tqdm(sources, desc=desc, unit="slide", position=2 * run_log.rank):
        try:
            embed_source(source, resolved, embedder, cfg, run_log, summary)
        except SlideFailedError as err:
            if not cfg.skip_errors:
                raise
            log.warning("skipped %s", err)
    if summary.failed:
        log.warning(
            "%d slide(s) failed and were skipped, see %s: %s",
            len(summary.failed),
            run_log.path,
            ", ".join(summary.failed),
        )
    return summary


def default_threads(devices: int) -> int:
    """CPU threads per process when `devices` processes share this machine's cores."""
    return max(1, (os.cpu_count() or 1) // devices)

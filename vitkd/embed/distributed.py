"""`--devices N`: one process per device, slide i to rank i % N, results gathered in the parent."""

from __future__ import annotations

import logging
import multiprocessing as mp
import queue
import sys
import time
import uuid
from dataclasses import asdict

import torch

from vitkd.embed.config import EmbedConfig
from vitkd.embed.errors import SlideFailedError
from vitkd.embed.resolve import check_dim, resolve_model
from vitkd.embed.runlog import RunLog
from vitkd.embed.runner import RunSummary, default_threads, embed_sources
from vitkd.embed.sources import Source, collect_sources

log = logging.getLogger(__name__)


class RankFailedError(RuntimeError):
    """A rank stopped on an error; the message is that rank's own one-line error."""


def pick_device(rank: int, devices: int) -> torch.device:
    """`cuda:<rank>` when CUDA is present (checking there are `devices` GPUs), else the CPU."""
    if not torch.cuda.is_available():
        return torch.device("cpu")
    count = torch.cuda.device_count()
    if devices > count:
        raise ValueError(
            f"--devices {devices}: only {count} CUDA device(s) visible; pass --devices {count}"
        )
    return torch.device("cuda", rank)


def shard(sources: list[Source], rank: int, world: int) -> list[Source]:
    """Slide i goes to rank i % world, so ranks never share an output file."""
    return sources[rank::world]


def run_rank(cfg: EmbedConfig, sources: list[Source], rank: int, run_id: str) -> RunSummary:
    """Resolve the model on this rank's device and embed its slides."""
    device = pick_device(rank, cfg.devices)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    elif cfg.devices > 1:
        torch.set_num_threads(default_threads(cfg.devices))
    resolved = resolve_model(cfg.model, cfg.weights, cfg.which, cfg.model_kwargs)
    check_dim(resolved, cfg.dim)
    return embed_sources(sources, resolved, cfg, device, RunLog(cfg.out, run_id, rank))


def _child(
    cfg: EmbedConfig, sources: list[Source], rank: int, run_id: str, results: mp.Queue
) -> None:
    logging.basicConfig(level=logging.WARNING, format=f"[rank {rank}] %(levelname)s %(message)s")
    try:
        summary = run_rank(cfg, sources, rank, run_id)
    except (SlideFailedError, ValueError, FileNotFoundError, RuntimeError) as err:
        results.put((rank, "error", str(err)))
        sys.exit(1)
    results.put((rank, "ok", asdict(summary)))


def _merge(summaries: list[RunSummary]) -> RunSummary:
    total = RunSummary()
    for part in summaries:
        for name in ("done", "existed", "locked", "failed"):
            getattr(total, name).extend(getattr(part, name))
        total.tiles += part.tiles
    return total


def _spawn(cfg: EmbedConfig, sources: list[Source], run_id: str) -> RunSummary:
    ctx = mp.get_context("spawn")
    results: mp.Queue = ctx.Queue()
    procs = [
        ctx.Process(
            target=_child,
            args=(cfg, shard(sources, rank, cfg.devices), rank, run_id, results),
            name=f"vitkd-embed-{rank}",
        )
        for rank in range(cfg.devices)
    ]
    for proc in procs:
        proc.start()
    summaries: list[RunSummary] = []
    errors: list[str] = []
    pending = set(range(cfg.devices))
    try:
        while pending:
            try:
                rank, status, payload = results.get(timeout=0.5)
            except queue.Empty:
                dead = [r for r in pending if procs[r].exitcode is not None]
                for r in dead:
                    # Exited without reporting: killed or crashed hard (e.g. out of memory).
                    time.sleep(0.2)  # let a report racing the exit arrive first
                    if results.empty():
                        pending.discard(r)
                        errors.append(f"rank {r} died with exit code {procs[r].exitcode}")
                if errors and not cfg.skip_errors:
                    break
                continue
            pending.discard(rank)
            if status == "ok":
                summaries.append(RunSummary(**payload))
            else:
                errors.append(payload)
                if not cfg.skip_errors:
                    break
    finally:
        for proc in procs:
            if errors and proc.is_alive():
                proc.terminate()
            proc.join()
    if errors:
        raise RankFailedError("; ".join(errors))
    return _merge(summaries)


def run(cfg: EmbedConfig) -> RunSummary:
    """Embed everything `cfg` asks for, on one device or split across `cfg.devices` processes.

    Raises:
        SlideFailedError: a slide failed without `skip_errors` (single process).
        RankFailedError: a rank stopped on an error (`devices > 1`).
    """
    sources = collect_sources(cfg.inputs, exclude=[cfg.out])
    if cfg.coords is not None and cfg.coords.is_file() and len(sources) > 1:
        raise ValueError(
            f"--coords {cfg.coords} is one coords file but {len(sources)} slides were given; "
            "pass a folder of <slide name>.h5 coords files instead."
        )
    cfg.out.mkdir(parents=True, exist_ok=True)
    run_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    if cfg.devices == 1:
        return run_rank(cfg, sources, 0, run_id)
    pick_device(0, cfg.devices)  # fail fast on too few GPUs, before spawning anything
    return _spawn(cfg, sources, run_id)

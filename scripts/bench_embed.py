"""Benchmark `vitkd.embed`: end-to-end tiles/s (slide -> HDF5) against the model's pure forward.

Both are measured in one run with the same model, batch size and device. For each slide the pure
forward runs the backbone on pre-made uint8 tensors, as many tiles as the slide has and batched
the same way, right before and right after the end-to-end run (averaged), so a shared machine's
load drift hits both alike. End to end times `embed_sources` from slide file to finished `.h5`
(tissue detection, tiling, decoding in DataLoader workers, forward, writing). The last line is
`ratio=<end-to-end tiles/s over both slides / pure-forward tiles/s>`; the CPU-time ratio
printed above it (process + worker CPU seconds) is less sensitive to other load.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import tempfile
import time
from pathlib import Path

import torch

from slides import SAMPLE_SLIDE
from slides.synthetic import write_synthetic_slide
from vitkd.embed.config import EmbedConfig
from vitkd.embed.distributed import pick_device
from vitkd.embed.embedder import Embedder
from vitkd.embed.resolve import ResolvedModel, resolve_model
from vitkd.embed.runlog import RunLog
from vitkd.embed.runner import embed_sources
from vitkd.embed.sources import Source
from vitkd.embed.tiles import prepare_job


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--model", default="vit_small_patch14_reg4_dinov2", help="timm name (random init)"
    )
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--large-size", type=int, default=12288, help="side of the generated slide (px)")
    p.add_argument(
        "--large-mpp", type=float, default=0.25, help="its level-0 mpp (0.25: read level 1)"
    )
    p.add_argument(
        "--pure-batches", type=int, default=3, help="timed batches per pure-forward pass"
    )
    p.add_argument(
        "--quick", action="store_true", help="8192 px slide, 2 pure batches (about 1.5 min)"
    )
    return p.parse_args()


def pure_forward(embedder: Embedder, tiles: int, batch_size: int, size: int) -> float:
    """Seconds the model alone takes for `tiles` pre-made uint8 tiles on the device, batched the
    way the slide is (full batches, then the remainder)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (batch_size, 3, size, size), dtype=torch.uint8, generator=gen)
    x = x.to(embedder.device)
    sizes = [batch_size] * (tiles // batch_size) + (
        [tiles % batch_size] if tiles % batch_size else []
    )
    _sync(embedder.device)
    start = time.perf_counter()
    for n in sizes:
        embedder(x[:n])
    _sync(embedder.device)
    return time.perf_counter() - start


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def end_to_end(
    source: Source, resolved: ResolvedModel, cfg: EmbedConfig, device: torch.device
) -> tuple[int, float, float]:
    """(tiles, wall seconds, CPU seconds incl. workers) to embed one slide from file to `.h5`."""
    _sync(device)
    cpu0 = _cpu_seconds()
    start = time.perf_counter()
    summary = embed_sources([source], resolved, cfg, device, RunLog(cfg.out, "bench"))
    _sync(device)
    return summary.tiles, time.perf_counter() - start, _cpu_seconds() - cpu0


def _cpu_seconds() -> float:
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usage)


def main() -> None:
    """Run the benchmark and print the figures."""
    args = parse_args()
    if args.quick:
        args.large_size = 8192
    logging.basicConfig(level=logging.WARNING)
    device = pick_device(0, 1)
    with tempfile.TemporaryDirectory(prefix="bench_embed_") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        large = write_synthetic_slide(
            tmp / "large.tif", args.large_size, args.large_size, mpp=args.large_mpp, seed=3
        )
        print(
            f"generated {large.name} {args.large_size}x{args.large_size} @ {args.large_mpp} mpp in {time.perf_counter() - t0:.1f} s"
        )
        resolved = resolve_model(args.model)
        size = resolved.backbone.spec.img_size
        cfg = EmbedConfig(
            inputs=[],
            model=args.model,
            out=tmp / "out",
            batch_size=args.batch_size,
            workers=args.workers,
            overwrite=True,
        )
        embedder = Embedder(resolved.backbone, device, cfg.tokens, cfg.precision)
        print(
            f"model {args.model} ({size} px, random init) on {device}, "
            f"{torch.get_num_threads()} threads, batch {args.batch_size}, {args.workers} workers; "
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        )
        pure_forward(embedder, args.batch_size, args.batch_size, size)  # warm-up
        totals = {"tiles": 0, "pure": 0.0, "e2e": 0.0, "pure_cpu": 0.0, "e2e_cpu": 0.0}
        for path in (SAMPLE_SLIDE, large):
            source = Source(Path(path), "slide")
            n = prepare_job(source, cfg, size).n
            # Pure forward right before and after, so machine-load drift hits both figures alike.
            cpu0 = _cpu_seconds()
            pure_s = pure_forward(embedder, n, args.batch_size, size)
            cpu1 = _cpu_seconds()
            tiles, e2e_s, e2e_cpu = end_to_end(source, resolved, cfg, device)
            cpu2 = _cpu_seconds()
            pure_s = (pure_s + pure_forward(embedder, n, args.batch_size, size)) / 2
            pure_cpu = (cpu1 - cpu0 + _cpu_seconds() - cpu2) / 2
            print(
                f"{Path(path).name}: {tiles} tiles; pure forward {tiles / pure_s:.2f} tiles/s, "
                f"end to end {tiles / e2e_s:.2f} tiles/s (x{pure_s / e2e_s:.3f}); "
                f"CPU s/tile {pure_cpu / tiles:.3f} vs {e2e_cpu / tiles:.3f}"
            )
            for key, value in (("tiles", tiles), ("pure", pure_s), ("e2e", e2e_s)):
                totals[key] += value
            totals["pure_cpu"] += pure_cpu
            totals["e2e_cpu"] += e2e_cpu
    print(
        f"both slides: pure forward {totals['tiles'] / totals['pure']:.2f} tiles/s, end to end "
        f"{totals['tiles'] / totals['e2e']:.2f} tiles/s; CPU-time ratio "
        f"{totals['pure_cpu'] / totals['e2e_cpu']:.3f}; load average {os.getloadavg()[0]:.1f}"
    )
    print(f"ratio={totals['pure'] / totals['e2e']:.3f}")


if __name__ == "__main__":
    main()

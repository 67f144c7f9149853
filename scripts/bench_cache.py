r"""Benchmark the offline teacher-feature cache: training step with the cache vs the live teacher.

Side by side in one process, on the demo pair (teacher `builtin:demo-teacher`, student as in
`configs/demo.yaml`) and the two shipped slides:

1. Builds the cache (`vitkd.cache.builder`, as `python -m vitkd.cache --config configs/demo.yaml`).
2. Encoding trade-off on the cached images: bytes per tile, PSNR against the image the teacher
   saw, and how far the teacher's CLS (and patch tokens) move when it re-embeds the decoded tile
   (cosine), for PNG and JPEG at several qualities.
3. The training step (`DistillationModule.compute_losses`, backward, AdamW) on the same batches,
   once with `batch["cache"]` (the teacher does not run) and once without (the live teacher
   runs on `batch["teacher"]`), alternating, median time per step, samples/s.
4. The FLOPs the cache removes per sample (the teacher's forward over the global crops), at the
   demo shapes and at full size (H-optimus-0 ViT-g/14 at 224 px into H0-mini, `configs/h0mini.yaml`),
   with the `vitkd.distill.cpu_guard` estimate, and the full-size disk cost per tile.

The last line is `ratio=<cached samples/s / live samples/s>` (goal: >= 2 at the demo shapes).

    python scripts/bench_cache.py                       # about a minute on 2 cores
    python scripts/bench_cache.py --steps 20 --out benchmarks/results/2026-12-01_cpu_cache.md
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import yaml

import vitkd  # noqa: F401  (offline environment first)
from slides.atomic import write_text_atomic
from vitkd.cache.builder import BuildOptions, build_cache
from vitkd.cache.cost import cost_lines
from vitkd.cache.encoding import decode_tile, encode_tile, psnr
from vitkd.cache.teachers import build_teachers, teacher_blocks
from vitkd.cache.tiles import plan_tiles, teacher_input
from vitkd.data.collate import MaskConfig
from vitkd.data.datamodule import CropConfig, DistillDataModule, TileSource
from vitkd.distill.config import HeadConfig, StudentConfig, TeacherConfig
from vitkd.distill.cpu_guard import _forward_flops, _vit_shape, estimate_step
from vitkd.distill.module import DistillationModule

ROOT = Path(__file__).resolve().parents[1]
ENCODINGS = (("png", 0), ("jpeg", 95), ("jpeg", 90), ("jpeg", 80), ("jpeg", 70))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", type=Path, default=ROOT / "configs" / "demo.yaml")
    p.add_argument("--steps", type=int, default=12, help="timed steps per side")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per side first")
    p.add_argument("--batch-size", type=int, help="default: the config's")
    p.add_argument("--encoding", default="jpeg", choices=("jpeg", "png"), help="of the timed cache")
    p.add_argument("--patch-tokens", type=int, default=64, help="cached per tile and teacher")
    p.add_argument("--cache", type=Path, help="cache folder (default: a temporary one)")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--out", type=Path, help="also write the report here")
    return p.parse_args(argv)


def encoding_table(config: dict[str, Any], teacher: Any, source: TileSource) -> list[str]:
    """Bytes, PSNR and teacher CLS/patch cosine to the original, per encoding."""
    tiles = plan_tiles(source)
    size = int(teacher.backbone.spec.img_size)
    images = [teacher_input(tiles[i][0], size) for i in range(len(tiles))]
    raw = [tiles[i][0] for i in range(len(tiles))]

    def embed(batch: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2)
        with torch.no_grad():
            tokens = teacher.backbone.forward_tokens(x)
        return tokens.cls, tokens.patches

    ref_cls, ref_patches = embed(images)
    lines = [
        f"{len(images)} tiles of the shipped slides, {size} px (the demo teacher's input; "
        f"{source.tile_size} px read at {source.mpp} um/px)",
        "",
        "| encoding | bytes/tile | PSNR dB mean (min) | CLS cosine mean (min) | patch cosine mean | "
        f"bytes/tile at {source.tile_size} px |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for encoding, quality in ENCODINGS:
        data = [encode_tile(im, encoding, quality or 90) for im in images]
        decoded = [decode_tile(d) for d in data]
        scores = [psnr(a, b) for a, b in zip(images, decoded, strict=True)]
        cls, patches = embed(decoded)
        cos = F.cosine_similarity(cls, ref_cls, dim=-1)
        pcos = F.cosine_similarity(patches, ref_patches, dim=-1).mean()
        big = np.mean([len(encode_tile(t, encoding, quality or 90)) for t in raw])
        name = "png" if encoding == "png" else f"jpeg q{quality}"
        finite = [s for s in scores if np.isfinite(s)]
        ps = "lossless" if not finite else f"{np.mean(finite):.1f} ({min(finite):.1f})"
        lines.append(
            f"| {name} | {np.mean([len(d) for d in data]):,.0f} | {ps} | "
            f"{cos.mean():.6f} ({cos.min():.6f}) | {pcos:.6f} | {big:,.0f} |"
        )
    return lines


def demo_module(config: dict[str, Any]) -> DistillationModule:
    """The demo's teacher and student with feature targets, as `configs/demo.yaml`."""
    model = config["model"]
    module = DistillationModule(
        teacher=TeacherConfig(**model["teacher"]),
        student=StudentConfig(**model["student"]),
        targets=model.get("targets", "features"),
        heads=HeadConfig(**(model.get("heads") or {})),
    )
    module.configure_model()  # the attention kernels training uses
    return module


def time_steps(
    module: DistillationModule, batches: list[dict], steps: int, warmup: int
) -> dict[str, list[float]]:
    """Seconds per training step with and without `batch["cache"]`, alternating."""
    params = [p for p in module.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)

    def step(batch: dict) -> float:
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        total = module.weighted_total(module.compute_losses(batch))
        total.backward()
        opt.step()
        return time.perf_counter() - start

    module.train()
    times: dict[str, list[float]] = {"cached": [], "live": []}
    for i in range(warmup + steps):
        batch = batches[i % len(batches)]
        live = {k: v for k, v in batch.items() if k != "cache"}
        # alternate which side goes first, so a load change on the shared CPU hits both alike
        order = (
            (("cached", batch), ("live", live)) if i % 2 else (("live", live), ("cached", batch))
        )
        for name, b in order:
            seconds = step(b)
            if i >= warmup:
                times[name].append(seconds)
    return times


def flop_lines(config: dict[str, Any]) -> tuple[list[str], float]:
    """FLOPs per sample with and without the teacher, at the demo shapes and at full size."""
    lines = []
    for label, path in (
        ("demo", None),
        ("full size (configs/h0mini.yaml)", ROOT / "configs" / "h0mini.yaml"),
    ):
        cfg = config if path is None else yaml.safe_load(path.read_text())
        data = dict(cfg["data"], batch_size=1)
        est = estimate_step(cfg["model"], data)
        crops = data.get("crops") or {}
        t = cfg["model"]["teacher"]
        teacher = _vit_shape(t.get("name", "h-optimus-0"), dict(t.get("kwargs") or {}))
        removed = _forward_flops(
            teacher, int(crops.get("global_size", 224)), int(crops.get("n_global", 2))
        )
        lines.append(
            f"- {label}: {est.flops / 1e9:,.2f} GFLOP per sample, of which the teacher's forward "
            f"over the {crops.get('n_global', 2)} global crops at {crops.get('global_size', 224)} px "
            f"is {removed / 1e9:,.2f} GFLOP ({removed / est.flops:.0%}); with the cache "
            f"{(est.flops - removed) / 1e9:,.2f} GFLOP, at most {est.flops / (est.flops - removed):.2f}x "
            "fewer FLOPs per sample"
        )
        if path is None:
            demo_bound = est.flops / (est.flops - removed)
    return lines, demo_bound


def fullsize_cost(source: TileSource, patch_tokens: int) -> list[str]:
    """Disk cost of caching H-optimus-0 (1536 wide, 16 x 16 grid) for 224 px JPEG q90 tiles."""
    tiles = plan_tiles(source)
    image = float(np.mean([len(encode_tile(tiles[i][0], "jpeg", 90)) for i in range(len(tiles))]))
    entry = {
        "key": "h-optimus-0",
        "embed_dim": 1536,
        "patch_tokens": patch_tokens,
        "index_dtype": "uint16",
    }
    return cost_lines([entry], image, 1_000_000, "jpeg q90, 224 px, measured on the shipped slides")


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print (and optionally write) the report."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    torch.set_num_threads(args.threads)
    config = yaml.safe_load(args.config.read_text())
    source = TileSource(**{**config["data"]["source"], "holdout_fraction": 0.0})
    out: list[str] = ["# Offline teacher-feature cache on the CPU (`scripts/bench_cache.py`)", ""]
    out.append(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; config {args.config.name}; "
        f"{time.strftime('%Y-%m-%d %H:%M')}"
    )
    (teacher,) = build_teachers(teacher_blocks(config["model"]))
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.cache or Path(tmp) / "cache"
        start = time.perf_counter()
        summary = build_cache(
            [teacher],
            source,
            BuildOptions(
                folder, encoding=args.encoding, patch_tokens=args.patch_tokens, shard_size=256
            ),
            say=lambda _: None,
        )
        built = time.perf_counter() - start
        out += [
            "",
            "## Cache build",
            "",
            f"{summary.manifest.n_tiles} tiles in {built:.1f} s "
            f"({len(summary.written)} shard(s) written, {len(summary.existed)} found); declared cost:",
            "",
        ]
        out += [f"    {line}" for line in summary.cost]
        out += ["", "## Encoding: size and what the teacher sees", ""]
        out += encoding_table(config, teacher, source)

        data_cfg = config["data"]
        crops = CropConfig(**data_cfg["crops"])
        batch_size = args.batch_size or int(data_cfg.get("batch_size", 32))
        dm = DistillDataModule(
            source=TileSource(cache=str(folder), holdout_fraction=source.holdout_fraction),
            crops=crops,
            masking=MaskConfig(),
            batch_size=batch_size,
            samples_per_epoch=batch_size * 4,
            num_workers=0,
        )
        dm.setup()
        start = time.perf_counter()
        batches = list(dm.train_dataloader())
        cached_data = (time.perf_counter() - start) / len(batches)
        live_dm = DistillDataModule(
            source=source,
            crops=crops,
            masking=MaskConfig(),
            batch_size=batch_size,
            samples_per_epoch=batch_size * 2,
            num_workers=0,
        )
        live_dm.setup()
        start = time.perf_counter()
        n_live = sum(1 for _ in live_dm.train_dataloader())
        live_data = (time.perf_counter() - start) / n_live
        module = demo_module(config)
        times = time_steps(module, batches, args.steps, args.warmup)
    b = batches[0]
    key = next(iter(b["cache"]))
    c = b["cache"][key]
    med = {k: statistics.median(v) for k, v in times.items()}
    best = {k: min(v) for k, v in times.items()}
    # the CPU is shared with other jobs: the fastest step is the estimate least hit by them
    rate = {k: batch_size / v for k, v in best.items()}
    out += [
        "",
        "## Training step (compute_losses + backward + AdamW), same batches",
        "",
        f"batch {batch_size}: global {tuple(b['global'].shape)}, local {tuple(b['local'].shape)}, "
        f"cached targets of {key!r}: cls {tuple(c['cls'].shape)}, patches {tuple(c['patches'].shape)} "
        f"on grid {c['grid']} (views of the first batch); {args.steps} timed steps per side after "
        f"{args.warmup}, alternating",
        "",
        "| | s/step median (min, max) | samples/s (best step) | samples/s (median step) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name in ("live", "cached"):
        out.append(
            f"| {name} teacher | {med[name]:.4f} ({best[name]:.4f}, {max(times[name]):.4f}) | "
            f"{rate[name]:,.1f} | {batch_size / med[name]:,.1f} |"
        )
    out += [
        "",
        f"median-step ratio {med['live'] / med['cached']:.2f}; `ratio=` below is of the best steps "
        "(the CPU is shared: the fastest of alternating steps is the least disturbed estimate)",
        "",
        f"Data (one process, no workers, for scale): a batch from the cache {cached_data:.2f} s, "
        f"from the slides (read, multi-crop) {live_data:.2f} s",
    ]
    lines, bound = flop_lines(config)
    out += ["", "## FLOPs the cache removes (vitkd.distill.cpu_guard estimate)", "", *lines]
    out += [
        "",
        f"Demo: measured {rate['cached'] / rate['live']:.2f}x against a FLOP bound of {bound:.2f}x.",
    ]
    out += ["", "## Full-size disk cost (H-optimus-0, 1,000,000 tiles)", ""]
    out += [f"    {line}" for line in fullsize_cost(source, args.patch_tokens)]
    out += ["", f"ratio={rate['cached'] / rate['live']:.2f}"]
    text = "\n".join(out) + "\n"
    print(text, end="")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(args.out, text)


if __name__ == "__main__":
    main()

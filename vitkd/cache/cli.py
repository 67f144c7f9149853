"""Command line of `python -m vitkd.cache`: the teachers of a train config, over its tiles, once."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from vitkd.cache.encoding import ENCODINGS

EPILOG = """\
The teachers are the `model.teacher` block of the train config (or each block of
`model.teachers`, keyed by its `key`); the tiles are its `data.source` (slides with a tissue grid,
or with coords files from `python -m slides tile` or TRIDENT), unless --slides/--coords/--mpp/...
say otherwise. Each tile is resized to the teachers' input side, encoded (--encoding), and
stored with every teacher's fp16 CLS token and --patch-tokens of its patch tokens, sampled per
tile from --seed, with their flat indices on the teacher grid.

Output: <out>/manifest.json (teachers with weight fingerprints, normalisation, grids; image
encoding; tiles) and <out>/shard-NNNNN.h5. Before it starts it prints the disk cost per tile and
teacher and in all. Reruns skip finished shards and refuse other settings; shards are written to
<name>.tmp under a lock and renamed when complete. Train on it with `data.source.cache: <out>`.
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for --help tests)."""
    p = argparse.ArgumentParser(
        prog="python -m vitkd.cache",
        description="Cache teacher CLS and patch-token targets of tiles, to train without the teacher.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", type=Path, help="vitkd.train YAML (default: the demo config)")
    p.add_argument("--out", type=Path, required=True, help="cache folder")
    p.add_argument("--slides", nargs="+", help="slides, folders or CSVs (default: the config's)")
    p.add_argument("--coords", help="folder of coords files (ours or TRIDENT's) for --slides")
    p.add_argument("--mpp", type=float, help="tile um/px (default: the config's)")
    p.add_argument("--tile-size", type=int, help="tile side read from the slides")
    p.add_argument("--min-tissue", type=float, help="tissue fraction of a grid tile")
    p.add_argument("--slide-mpp", type=float, help="level-0 um/px of slides lacking it")
    p.add_argument("--image-size", type=int, help="cached image side (default: the teacher's)")
    p.add_argument("--encoding", choices=ENCODINGS, default="jpeg", help="tile image encoding")
    p.add_argument("--quality", type=int, default=90, help="JPEG quality (default 90)")
    p.add_argument("--patch-tokens", type=int, default=64, help="patch tokens cached per tile")
    p.add_argument("--seed", type=int, default=0, help="seed of the token sampling")
    p.add_argument("--shard-size", type=int, default=1024, help="tiles per shard")
    p.add_argument("--batch-size", type=int, default=64, help="tiles per teacher forward")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    return p


def _load_config(path: Path | None) -> dict[str, Any]:
    if path is None:
        from vitkd.config_files import config_path

        path = config_path("demo.yaml")
    if not Path(path).is_file():
        raise FileNotFoundError(f"--config {path}: no such file")
    return yaml.safe_load(Path(path).read_text()) or {}


def source_from(config: dict[str, Any], args: argparse.Namespace):
    """The config's `data.source` with the command line's overrides, as a `TileSource`."""
    from vitkd.data.datamodule import TileSource

    block = dict((config.get("data") or {}).get("source") or {})
    block.pop("cache", None)  # a training option: where to read a cache, not what to cache
    known = {f.name for f in dataclasses.fields(TileSource)}
    unknown = sorted(set(block) - known)
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in data.source; valid: {sorted(known)}")
    overrides = {
        "slides": args.slides,
        "coords": args.coords,
        "mpp": args.mpp,
        "tile_size": args.tile_size,
        "min_tissue": args.min_tissue,
        "slide_mpp": args.slide_mpp,
    }
    block.update({k: v for k, v in overrides.items() if v is not None})
    if args.slides is not None and args.coords is None:
        block.pop("coords", None)  # the config's coords belong to the config's slides
    return TileSource(**block)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; 0 when done, 2 on bad input (one `error:` line)."""
    from vitkd.cache.builder import BuildOptions, build_cache
    from vitkd.cache.errors import CacheError
    from vitkd.cache.teachers import build_teachers, teacher_blocks

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    try:
        config = _load_config(args.config)
        model = config.get("model") or {}
        source = source_from(config, args)
        teachers = build_teachers(teacher_blocks(model), seed=int(model.get("seed", 0)))
        options = BuildOptions(
            out=args.out,
            image_size=args.image_size,
            encoding=args.encoding,
            quality=args.quality,
            patch_tokens=args.patch_tokens,
            seed=args.seed,
            shard_size=args.shard_size,
            batch_size=args.batch_size,
            device=args.device,
        )
        summary = build_cache(teachers, source, options)
    except (CacheError, ValueError, FileNotFoundError, OSError) as err:
        print(f"vitkd.cache: error: {err}", file=sys.stderr)
        return 2
    print(
        f"vitkd.cache: {len(summary.written)} shard(s) written, {len(summary.existed)} already "
        f"done, {len(summary.locked)} being written by another process -> {args.out}"
    )
    return 0

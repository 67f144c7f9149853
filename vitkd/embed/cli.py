"""Command line of `python -m vitkd.embed`: parse, run, and turn errors into one clear line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from vitkd.embed.config import PRECISIONS, TOKEN_MODES, EmbedConfig

log = logging.getLogger("vitkd.embed")

EPILOG = """\
SLIDES may be slide files, folders of slides (searched recursively), CSV files with a `path`
column, or folders holding only PNG/JPEG/BMP tiles (each such folder is embedded as one
"slide" whose coords are (row index, 0), with a `tile_paths` dataset naming the files).

--model resolves, in this order: a vitkd export folder (model.safetensors + config.json); a
vitkd training checkpoint (.ckpt, branch --which); a preset (h-optimus-0, h0-mini) or any timm
architecture name, with local weights from --weights (random init, with a warning, without).

Output: <out>/<slide name>.h5 with `features` (N, D) float32 and `coords` (N, 2) int64 level-0
(TRIDENT layout), and <out>/embed_log.jsonl recording every slide's outcome. Finished slides are
skipped on re-runs; files are written to <name>.h5.tmp and renamed when complete.
"""


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON ({err}): {text!r}") from err
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f"must be a JSON object such as '{{\"depth\": 2}}', got {text!r}"
        )
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for --help tests and docs)."""
    p = argparse.ArgumentParser(
        prog="python -m vitkd.embed",
        description="Embed every tissue tile of whole-slide images with a ViT (TRIDENT-style HDF5).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("slides", nargs="+", type=Path, metavar="SLIDES", help="slides, folders, CSVs")
    p.add_argument(
        "--model",
        required=True,
        help="export folder, .ckpt, .onnx (vitkd.export --format onnx), preset or timm name",
    )
    p.add_argument("--weights", type=Path, help="local weights for a preset or timm name")
    p.add_argument("--which", choices=("ema", "student"), default="ema", help="checkpoint branch")
    p.add_argument(
        "--model-kwargs",
        type=_json_object,
        default={},
        metavar="JSON",
        help="timm kwargs for a preset/timm name, e.g. '{\"depth\": 2}'",
    )
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--mpp", type=float, default=0.5, help="tile microns per pixel (default 0.5)")
    p.add_argument("--size", type=int, help="tile side in pixels (default: the model's input size)")
    p.add_argument("--overlap", type=int, default=0, help="tile overlap in pixels at --mpp")
    p.add_argument("--min-tissue", type=float, default=0.5, help="tissue fraction to keep a tile")
    p.add_argument("--slide-mpp", type=float, help="level-0 mpp for slides lacking it")
    p.add_argument("--coords", type=Path, help="coords file, or folder of <name>.h5 coords files")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--workers", type=int, default=4, help="decoding workers per device")
    p.add_argument("--tokens", choices=TOKEN_MODES, default="cls")
    p.add_argument(
        "--dim", type=int, help="first N dimensions of each token (a trained Matryoshka size)"
    )
    p.add_argument("--precision", choices=PRECISIONS, default="auto", help="auto: bf16 on CUDA")
    p.add_argument("--devices", type=int, default=1, help="processes/GPUs to split slides across")
    p.add_argument("--skip-errors", action="store_true", help="log failing slides and go on")
    p.add_argument("--overwrite", action="store_true", help="recompute finished slides")
    return p


def config_from_args(args: argparse.Namespace) -> EmbedConfig:
    """Map parsed arguments onto an `EmbedConfig`."""
    return EmbedConfig(
        inputs=list(args.slides),
        model=args.model,
        out=args.out,
        weights=args.weights,
        which=args.which,
        model_kwargs=args.model_kwargs,
        mpp=args.mpp,
        size=args.size,
        batch_size=args.batch_size,
        workers=args.workers,
        tokens=args.tokens,
        precision=args.precision,
        skip_errors=args.skip_errors,
        overwrite=args.overwrite,
        devices=args.devices,
        coords=args.coords,
        min_tissue=args.min_tissue,
        slide_mpp=args.slide_mpp,
        overlap=args.overlap,
        dim=args.dim,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok or errors skipped, 1 a slide failed, 2 bad input)."""
    from vitkd.embed.distributed import RankFailedError, run
    from vitkd.embed.errors import SlideFailedError

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        cfg = config_from_args(args)
        summary = run(cfg)
    except (SlideFailedError, RankFailedError) as err:
        print(f"vitkd.embed: error: {err}", file=sys.stderr)
        print("  (pass --skip-errors to log failing slides and continue)", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError) as err:
        print(f"vitkd.embed: error: {err}", file=sys.stderr)
        return 2
    log.info(
        "embedded %d slide(s) (%d tiles); %d already done, %d locked by another process, "
        "%d failed -> %s",
        len(summary.done),
        summary.tiles,
        len(summary.existed),
        len(summary.locked),
        len(summary.failed),
        cfg.out,
    )
    return 0

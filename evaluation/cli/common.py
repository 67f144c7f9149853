"""Arguments and helpers shared by the subcommands."""

import argparse
from pathlib import Path

import torch


def add_out(parser: argparse.ArgumentParser) -> None:
    """--out DIR (required)."""
    parser.add_argument(
        "--out", type=Path, required=True, help="output folder (results.json, CSV, args.json)"
    )


def add_model(parser: argparse.ArgumentParser, prefix: str = "", required: bool = False) -> None:
    """--<prefix>model / --<prefix>weights, resolved like `python -m vitkd.embed --model`."""
    dash = f"{prefix}-" if prefix else ""
    parser.add_argument(
        f"--{dash}model",
        required=required,
        help="vitkd export folder, .ckpt, preset (h-optimus-0, h0-mini) or timm name",
    )
    parser.add_argument(
        f"--{dash}weights", default=None, help="local weights file for a preset / timm name"
    )


def add_embedding_opts(parser: argparse.ArgumentParser) -> None:
    """--tokens, --batch-size, --device."""
    parser.add_argument("--tokens", choices=["cls", "cls+mean"], default="cls")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")


def add_top_k(parser: argparse.ArgumentParser) -> None:
    """--top-k, --dtype, --chunk-size for PLISM metrics."""
    parser.add_argument("--top-k", type=int, nargs="+", default=[1, 3, 5, 10])
    parser.add_argument(
        "--dtype",
        choices=["float32", "float16", "plismbench"],
        default="float32",
        help="float32; float16: fast torch float16 (self masked, ties to the partner); "
        "plismbench: plismbench's numpy float16 arithmetic bit for bit, its published numbers "
        "(as slow as plismbench on a CPU)",
    )
    parser.add_argument(
        "--chunk-size", type=int, default=2048, help="tiles per similarity block (memory ~ chunk^2)"
    )


def resolved_args(args: argparse.Namespace) -> dict[str, object]:
    """The parsed arguments as JSON-friendly values (no callables)."""
    return {
        k: (str(v) if isinstance(v, Path) else v)
        for k, v in vars(args).items()
        if k not in ("func", "command")
    }

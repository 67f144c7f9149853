"""`plism`: PLISM metrics over registered slides' features; `--write-plismbench` converts vitkd HDF5."""

import argparse
from pathlib import Path

import numpy as np
import torch

from evaluation.cli.common import add_out, add_top_k, resolved_args
from evaluation.outputs import write_run
from evaluation.plism import (
    PlismResult,
    evaluate_slides,
    find_slide_files,
    load_slide_set,
    read_conditions_csv,
    write_plismbench_layout,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the subcommand."""
    p = sub.add_parser(
        "plism", help="PLISM robustness metrics over registered slides", description=__doc__
    )
    p.add_argument(
        "features",
        nargs="+",
        type=Path,
        help=".h5 files/folders (vitkd/TRIDENT) or a plismbench <dir>/<extractor> folder",
    )
    p.add_argument(
        "--conditions",
        type=Path,
        help="CSV slide,staining,scanner (default: parsed from '<staining>_<scanner>...' names)",
    )
    p.add_argument(
        "--tiles-subset",
        type=Path,
        help=".npy of tile indices to keep (after sorting by x, y), like plismbench's subsets",
    )
    p.add_argument(
        "--write-plismbench",
        metavar="EXTRACTOR",
        help="also write <out>/plismbench/<EXTRACTOR>/<slide>/features.npy from the .h5 inputs",
    )
    add_top_k(p)
    add_out(p)
    p.set_defaults(func=run)


def result_payload(result: PlismResult) -> dict[str, object]:
    """The results.json part of one extractor's PLISM result."""
    return {
        "leaderboard": result.leaderboard,
        "leaderboard_3dp": result.leaderboard_3dp,
        "summary": result.summary,
        "metrics": result.metric_names,
        "n_pairs": len(result.rows),
    }


def run(args: argparse.Namespace) -> None:
    """Run the subcommand."""
    files = find_slide_files(args.features)
    conditions = read_conditions_csv(args.conditions) if args.conditions else None
    subset = np.load(args.tiles_subset) if args.tiles_subset else None
    feats, conds, coords = load_slide_set(files, conditions, subset)
    plismbench = args.dtype == "plismbench"
    result = evaluate_slides(
        feats,
        conds,
        args.top_k,
        dtype=torch.float16 if plismbench else getattr(torch, args.dtype),
        chunk_size=args.chunk_size,
        arithmetic="plismbench" if plismbench else "torch",
    )
    payload = {**result_payload(result), "n_slides": len(feats), "n_tiles": len(coords)}
    if args.write_plismbench:
        h5 = [p for p in files.values() if p.suffix == ".h5"]
        payload["plismbench_files"] = [
            str(p)
            for p in write_plismbench_layout(h5, args.out / "plismbench", args.write_plismbench)
        ]
    write_run(args.out, "plism", resolved_args(args), payload, result.rows, table="pairs.csv")
    print(
        f"leaderboard={result.leaderboard} (plismbench rounding: {result.leaderboard_3dp})  "
        f"({len(result.rows)} pairs, {args.dtype}) -> {args.out}"
    )

"""`plism`: PLISM metrics over registered slides' features; `--write-plismbench` converts vitkd HDF5."""

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from evaluation.cli.common import add_out, add_top_k, resolved_args
from evaluation.outputs import write_run
from evaluation.plism import (
    PlismResult,
    SlideSetError,
    evaluate_slides,
    find_slide_files,
    load_slide_set,
    read_conditions_csv,
    read_encoder_name,
    usable_top_k,
    write_plismbench_layout,
)
from evaluation.plism.conditions import (
    find_condition_folders,
    is_condition_folder,
    load_condition_sets,
    read_condition_csv,
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
        help=".h5 files/folders (vitkd/TRIDENT), a plismbench <dir>/<extractor> folder, a "
        "folder per condition (<dir>/<condition>/<tissue>.h5, same file names under each) or "
        "a CSV path,condition[,tissue,staining,scanner]",
    )
    p.add_argument(
        "--tolerance",
        type=int,
        default=4,
        help="pixels by which a tile's level-0 position may differ between slides; tiles not "
        "in every slide are dropped (and reported)",
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
        "leaderboard_note": result.leaderboard_note,
        "summary": result.summary,
        "metrics": result.metric_names,
        "n_pairs": len(result.rows),
    }


def _load(
    args: argparse.Namespace, notes: list[str]
) -> tuple[dict[str, np.ndarray], dict, np.ndarray, list[Path]]:
    """Features per slide (or condition), conditions, coords and the files read."""
    conditions = read_conditions_csv(args.conditions) if args.conditions else None
    single = args.features[0] if len(args.features) == 1 else None
    if single is not None and (single.suffix == ".csv" or is_condition_folder(single)):
        if args.tiles_subset:
            raise SlideSetError("--tiles-subset applies to registered slides, not condition sets")
        if single.suffix == ".csv":
            sets, from_csv = read_condition_csv(single)
            conditions = conditions or from_csv
        else:
            sets = find_condition_folders(single)
        feats, conds, coords, _ = load_condition_sets(sets, conditions, args.tolerance, notes)
        notes.append(
            f"{len(sets)} tissue(s) x {len(feats)} conditions, {len(coords)} registered tiles"
        )
        return feats, conds, coords, [p for per in sets.values() for p in per.values()]
    files = find_slide_files(args.features)
    subset = np.load(args.tiles_subset) if args.tiles_subset else None
    feats, conds, coords = load_slide_set(files, conditions, subset, args.tolerance, notes)
    return feats, conds, coords, list(files.values())


def run(args: argparse.Namespace) -> None:
    """Run the subcommand."""
    notes: list[str] = []
    feats, conds, coords, files = _load(args, notes)
    top_k, note = usable_top_k(args.top_k, len(coords))
    if note:
        notes.append(note)
    for line in notes:
        print(f"note: {line}", file=sys.stderr)
    plismbench = args.dtype == "plismbench"
    result = evaluate_slides(
        feats,
        conds,
        top_k,
        dtype=torch.float16 if plismbench else getattr(torch, args.dtype),
        chunk_size=args.chunk_size,
        arithmetic="plismbench" if plismbench else "torch",
    )
    payload = {
        **result_payload(result),
        "n_slides": len(feats),
        "n_tiles": len(coords),
        "top_k": top_k,
        "encoder": read_encoder_name(files),
        "notes": notes,
    }
    if args.write_plismbench:
        h5 = [p for p in files if p.suffix == ".h5"]
        payload["plismbench_files"] = [
            str(p)
            for p in write_plismbench_layout(h5, args.out / "plismbench", args.write_plismbench)
        ]
    write_run(args.out, "plism", resolved_args(args), payload, result.rows, table="pairs.csv")
    why = f" ({result.leaderboard_note})" if result.leaderboard_note else ""
    print(
        f"leaderboard={result.leaderboard}{why} (plismbench rounding: {result.leaderboard_3dp})  "
        f"({len(result.rows)} pairs, {args.dtype}) -> {args.out}"
    )

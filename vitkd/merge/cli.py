"""`python -m vitkd.merge EXPORT EXPORT ... --method {average,task-arithmetic,ties} --out DIR`.

Merges students of one architecture that all started from one initialisation (for example
domain branches distilled from the same teacher, each from the export written by
`python -m vitkd.train --save_init DIR`) into one student, written as a normal export.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import vitkd  # noqa: F401  (offline environment first)
from vitkd.merge.average import average
from vitkd.merge.inputs import MergeError, check_compatible, load_input, recorded_init
from vitkd.merge.task_arithmetic import task_arithmetic
from vitkd.merge.ties import ties_merge
from vitkd.merge.write import write_merged

METHODS = ("average", "task-arithmetic", "ties")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m vitkd.merge",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("exports", nargs="+", type=Path, help="export folders to merge (2 or more)")
    p.add_argument("--out", type=Path, required=True, help="output export folder")
    p.add_argument(
        "--method",
        choices=METHODS,
        default="ties",
        help="average: uniform mean of the weights; task-arithmetic: base + scale * sum of task "
        "vectors (Ilharco et al. 2023); ties: trim, elect sign, disjoint mean (Yadav et al. "
        "2023). Default: ties",
    )
    p.add_argument(
        "--base",
        type=Path,
        help="export of the shared initialisation (task-arithmetic, ties); default: the "
        "vitkd.student_init every input records",
    )
    p.add_argument("--scale", type=float, default=1.0, help="lambda of task-arithmetic and ties")
    p.add_argument(
        "--keep", type=float, default=0.2, help="ties: fraction of each task vector kept (0.2)"
    )
    return p


def merge(args: argparse.Namespace) -> Path:
    """Load, check, merge and write; returns the output folder."""
    if len(args.exports) < 2:
        raise MergeError(f"got {len(args.exports)} export; merging needs at least 2")
    items = [load_input(path) for path in args.exports]
    base = None
    if args.method != "average":
        base = load_input(args.base if args.base is not None else recorded_init(items))
    check_compatible(items if base is None else [*items, base])
    states = [item.state for item in items]
    params: dict[str, float] = {}
    if args.method == "average":
        merged = average(states)
    elif args.method == "task-arithmetic":
        params = {"scale": args.scale}
        merged = task_arithmetic(states, base.state, args.scale)
    else:
        params = {"scale": args.scale, "keep": args.keep}
        merged = ties_merge(states, base.state, args.keep, args.scale)
    record = {
        "method": args.method,
        "parameters": params,
        "inputs": [item.record() for item in items],
        "base": base.record() if base is not None else None,
    }
    return write_merged(merged, items[0], args.out, record)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: user errors are one `error:` line and exit status 2."""
    args = _parser().parse_args(argv)
    try:
        out = merge(args)
    except (MergeError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"merged {len(args.exports)} exports ({args.method}) into {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

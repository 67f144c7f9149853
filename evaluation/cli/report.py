"""`report`: one HTML page + Markdown twin from evaluation and training run folders."""

import argparse
from pathlib import Path

from evaluation.cli.common import add_out, resolved_args
from evaluation.outputs import staged_folder, write_run


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the subcommand."""
    p = sub.add_parser("report", help="HTML + Markdown report of run folders", description=__doc__)
    p.add_argument(
        "runs",
        nargs="+",
        type=Path,
        help="run folders (python -m evaluation ... --out, or vitkd.train runs)",
    )
    p.add_argument("--title", default="vitkd evaluation report")
    add_out(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    """Run the subcommand."""
    from evaluation.report import build_report

    # One staged folder for the page and the run files: a failure leaves --out untouched.
    with staged_folder(args.out, last=("index.html", "results.json")) as tmp:
        page, runs = build_report(args.runs, tmp, args.title)
        rows = [{"run": str(r.path), "label": r.label, "kind": r.kind} for r in runs]
        write_run(
            tmp,
            "report",
            resolved_args(args),
            {"index": page.name, "markdown": "report.md", "runs": rows},
            rows,
            table="runs.csv",
        )
    print(f"report -> {args.out / page.name}")

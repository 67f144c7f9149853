"""Argparse entry point with one subcommand per evaluation."""

import argparse
import sys
from collections.abc import Sequence

from evaluation.cli import fidelity, hest, plism, probe, report, robustness, robustness_index

COMMANDS = (probe, hest, plism, robustness, robustness_index, fidelity, report)


def build_parser() -> argparse.ArgumentParser:
    """The `python -m evaluation` parser."""
    parser = argparse.ArgumentParser(
        prog="python -m evaluation",
        description="Evaluate distilled encoders; each command writes results.json, a CSV table and args.json to --out.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments and run the chosen command; bad input exits with its message, not a traceback."""
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from err

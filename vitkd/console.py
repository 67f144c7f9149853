"""Console-script entry points that need an exit status (see ``[project.scripts]``)."""

from __future__ import annotations


def train() -> int:
    """``vitkd-train``: ``python -m vitkd.train`` (user errors as one line, status 2)."""
    from vitkd.train import cli_main

    return cli_main()

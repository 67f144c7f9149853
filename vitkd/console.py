"""Console-script entry points that need an exit status (see ``[project.scripts]``)."""

from __future__ import annotations


def train() -> int:
    """``vitkd-train``: ``python -m vitkd.train`` (its ``main`` returns the CLI, not a status)."""
    from vitkd.train import main

    main()
    return 0

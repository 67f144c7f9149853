"""Slide domains (organ, site or scanner) from a `domain` column of CSV slide lists."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from slides.errors import SlideError
from slides.paths import csv_rows

DOMAIN_COLUMN = "domain"


class DomainError(SlideError):
    """A domain selection that the slide lists cannot satisfy."""


def slide_domains(csv_path: str | Path) -> list[tuple[Path, str]]:
    """Each slide of a CSV list with its domain (`""` where the cell is empty).

    Raises:
        DomainError: the CSV has no `domain` column.
    """
    csv_path = Path(csv_path).expanduser()
    rows = csv_rows(csv_path)
    if DOMAIN_COLUMN not in rows[0][1]:
        raise DomainError(
            f"{csv_path}: no '{DOMAIN_COLUMN}' column (columns: {', '.join(rows[0][1])}); add "
            f"one naming each slide's organ, site or scanner to select slides by domain"
        )
    return [(path, cells.get(DOMAIN_COLUMN, "")) for path, cells in rows]


def select_domains(sources: Sequence[str | Path], domains: Sequence[str]) -> list[Path]:
    """The slides of `sources` (CSV lists with a `domain` column) whose domain is in `domains`.

    Args:
        sources: CSV slide lists (`path` and `domain` columns).
        domains: the domains to keep (exact names); each must occur in at least one CSV.

    Returns:
        The selected slides, in CSV order.

    Raises:
        DomainError: a source is not a CSV, has no `domain` column, or a domain is unknown
            (the message names the CSVs and the domains they hold).
    """
    if not domains:
        raise DomainError("data.source.domains is an empty list: name at least one domain")
    if not sources:
        raise DomainError(
            "data.source.domains needs data.source.slides: CSV slide lists with a "
            f"'{DOMAIN_COLUMN}' column"
        )
    listed: list[tuple[Path, str]] = []
    for source in sources:
        path = Path(source).expanduser()
        if path.suffix.lower() != ".csv":
            raise DomainError(
                f"data.source.domains selects slides by the '{DOMAIN_COLUMN}' column of CSV "
                f"lists, but data.source.slides has {str(source)!r}, which is not a .csv"
            )
        if not path.is_file():
            raise DomainError(f"{path}: no such CSV slide list; check data.source.slides")
        listed.extend(slide_domains(path))
    counts: dict[str, int] = {}
    for _, domain in listed:
        if domain:
            counts[domain] = counts.get(domain, 0) + 1
    unknown = [d for d in domains if d not in counts]
    if unknown:
        available = ", ".join(f"{d} ({n} slide{'s' * (n != 1)})" for d, n in sorted(counts.items()))
        names = ", ".join(str(s) for s in sources)
        raise DomainError(
            f"data.source.domains: {', '.join(map(repr, unknown))} not in the "
            f"'{DOMAIN_COLUMN}' column of {names}; available domains: {available or 'none (every domain cell is empty)'}"
        )
    wanted = set(domains)
    return [path for path, domain in listed if domain in wanted]

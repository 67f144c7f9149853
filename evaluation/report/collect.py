"""Find what each run folder holds: an `evaluation` run (results.json) or a vitkd training run."""

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path


class ReportInputError(ValueError):
    """A run folder holds nothing the report can use."""


@dataclass
class Run:
    """One run folder: its kind (probe, hest, plism, robustness, fidelity, train) and contents."""

    path: Path
    label: str
    kind: str
    results: dict = field(default_factory=dict)
    table: list[dict[str, object]] = field(default_factory=list)
    metrics_csv: list[Path] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    projection: Path | None = None


def _number(value: str) -> object:
    try:
        return float(value)
    except ValueError:
        return value


def read_table(path: Path) -> list[dict[str, object]]:
    """A CSV table with numeric-looking cells converted to float."""
    with path.open(newline="") as f:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]


def load_run(path: str | Path) -> Run:
    """Read a run folder; raise when it has neither results.json nor training logs."""
    path = Path(path)
    if not path.is_dir():
        raise ReportInputError(
            f"{path}: not a folder; pass run folders written by `python -m evaluation` or `vitkd.train`"
        )
    label = path.resolve().name
    results_file = path / "results.json"
    if results_file.is_file():
        results = json.loads(results_file.read_text())
        table_file = path / str(results.get("table", ""))
        table = read_table(table_file) if table_file.is_file() and table_file != path else []
        projection = path / "projection.npz"
        return Run(
            path,
            label,
            str(results.get("command", "unknown")),
            results,
            table,
            projection=projection if projection.is_file() else None,
        )
    metrics = sorted(p for p in path.rglob("metrics.csv") if len(p.relative_to(path).parts) <= 4)
    summary_file = path / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    if not metrics and not summary:
        raise ReportInputError(
            f"{path}: no results.json, summary.json or metrics.csv; is this a finished run folder?"
        )
    return Run(path, label, "train", metrics_csv=metrics, summary=summary)


def unique_labels(runs: list[Run]) -> None:
    """Make run labels unique by appending the parent folder name where two collide."""
    seen: dict[str, int] = {}
    for r in runs:
        seen[r.label] = seen.get(r.label, 0) + 1
    for r in runs:
        if seen[r.label] > 1:
            r.label = f"{r.path.resolve().parent.name}/{r.label}"

"""Write a run folder: results.json, a CSV table and args.json, each via a temporary file + rename."""

import contextlib
import csv
import io
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from slides.atomic import write_text_atomic


def _jsonable(obj: object) -> object:
    """Replace NaN/inf (not valid JSON) by None and paths by strings, recursively."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item):
        return _jsonable(obj.item())
    return obj


@contextlib.contextmanager
def staged_folder(out: str | Path, last: Sequence[str] = ("results.json",)) -> Iterator[Path]:
    """Yield an empty temporary folder beside `out`; on success move its files into `out`.

    Files named in `last` move last (their presence marks a finished run). On an error the
    temporary folder is deleted and `out` is left as it was, so a command that fails part-way
    writes nothing half-done. Files already in `out` that the command does not write are kept.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        yield tmp
        files = sorted(
            (p for p in tmp.rglob("*") if p.is_file()),
            key=lambda p: (p.relative_to(tmp).as_posix() in last, p.as_posix()),
        )
        out.mkdir(parents=True, exist_ok=True)
        for src in files:
            dest = out / src.relative_to(tmp)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_json(path: str | Path, data: object) -> Path:
    """Pretty JSON, NaN written as null."""
    return write_text_atomic(path, json.dumps(_jsonable(data), indent=2, sort_keys=False) + "\n")


def write_csv(path: str | Path, rows: Sequence[Mapping[str, object]]) -> Path:
    """CSV with the union of the rows' keys as header (first-seen order)."""
    header: list[str] = []
    for r in rows:
        header += [k for k in r if k not in header]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return write_text_atomic(path, buf.getvalue())


def write_run(
    out_dir: str | Path,
    command: str,
    args: Mapping[str, object],
    results: Mapping[str, object],
    rows: Sequence[Mapping[str, object]],
    table: str = "table.csv",
) -> Path:
    """Write ``args.json``, ``<table>`` and ``results.json`` (last, so its presence marks a finished run)."""
    out = Path(out_dir)
    write_json(out / "args.json", {"command": command, **args})
    write_csv(out / table, rows)
    write_json(out / "results.json", {"command": command, "table": table, **results})
    return out

"""The same tissue under several conditions: a folder per condition with matching file names, or a CSV."""

import csv
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from evaluation.plism.groups import Condition
from evaluation.plism.io import SlideSetError, load_slide_set

UNSTATED = "unstated"
"""Staining (or scanner) of a condition whose name gives only one of the two."""


def condition_of(name: str) -> Condition:
    """(staining, scanner) of a condition name: ``<staining>_<scanner>``, else a scanner alone.

    A folder per scanner (``AT2/``, ``GT450/``) is the common case of a multi-scanner set; its
    staining is recorded as ``unstated`` and all its pairs are cross-scanner.
    """
    parts = name.split("_")
    if len(parts) >= 2 and parts[0] and parts[1]:
        return parts[0], parts[1]
    return UNSTATED, name


def is_condition_folder(path: Path) -> bool:
    """A folder with no feature files of its own but sub-folders that hold `.h5` files."""
    return (
        path.is_dir()
        and not any(path.glob("*.h5"))
        and sum(1 for d in path.iterdir() if d.is_dir() and any(d.glob("*.h5"))) >= 2
    )


def _check_matching(sets: dict[str, dict[str, Path]], where: str) -> dict[str, dict[str, Path]]:
    """{tissue: {condition: file}} with every tissue under every condition."""
    conditions = sorted({c for per in sets.values() for c in per})
    if len(conditions) < 2:
        raise SlideSetError(f"{where}: needs at least two conditions, found {conditions}")
    for tissue, per in sorted(sets.items()):
        missing = sorted(set(conditions) - set(per))
        if missing:
            raise SlideSetError(
                f"{where}: {tissue!r} is missing under {missing} (present under "
                f"{sorted(per)}); every condition needs a file of the same name"
            )
    return sets


def find_condition_folders(root: str | Path) -> dict[str, dict[str, Path]]:
    """{tissue: {condition: .h5 file}} of ``<root>/<condition>/<tissue>.h5``."""
    root = Path(root)
    sets: dict[str, dict[str, Path]] = {}
    for folder in sorted(d for d in root.iterdir() if d.is_dir()):
        for f in sorted(folder.glob("*.h5")):
            sets.setdefault(f.stem, {})[folder.name] = f
    return _check_matching(sets, str(root))


def read_condition_csv(path: str | Path) -> tuple[dict[str, dict[str, Path]], dict[str, Condition]]:
    """A CSV with columns ``path, condition`` and optionally ``tissue``, ``staining``, ``scanner``.

    ``path`` (relative to the CSV's folder) is a `.h5` embedding file; ``tissue`` defaults to its
    file name without suffix; ``staining``/``scanner`` default to :func:`condition_of`.
    """
    path = Path(path)
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        cols = set(reader.fieldnames or [])
        if not {"path", "condition"} <= cols:
            raise SlideSetError(
                f"{path}: needs columns path, condition (optional: tissue, staining, scanner); "
                f"found {sorted(cols)}"
            )
        rows = list(reader)
    sets: dict[str, dict[str, Path]] = {}
    conditions: dict[str, Condition] = {}
    for i, row in enumerate(rows):
        file = Path(row["path"])
        file = file if file.is_absolute() else path.parent / file
        if not file.is_file():
            raise SlideSetError(f"{path} row {i + 2}: no such file {file}")
        cond = row["condition"]
        tissue = row.get("tissue") or file.stem
        if cond in sets.get(tissue, {}):
            raise SlideSetError(f"{path} row {i + 2}: {tissue!r} under {cond!r} twice")
        sets.setdefault(tissue, {})[cond] = file
        default = condition_of(cond)
        conditions[cond] = (row.get("staining") or default[0], row.get("scanner") or default[1])
    return _check_matching(sets, str(path)), conditions


def load_condition_sets(
    sets: Mapping[str, Mapping[str, Path]],
    conditions: Mapping[str, Condition] | None = None,
    tolerance: int = 0,
    notes: list[str] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, Condition], np.ndarray, list[str]]:
    """Register each tissue across conditions, then stack the tissues: one "slide" per condition.

    Returns:
        features per condition, (staining, scanner) per condition, coords (n, 2) and the tissue
        of each row.
    """
    feats: dict[str, list[np.ndarray]] = {}
    coords, tissues = [], []
    conds: dict[str, Condition] = {}
    for tissue, files in sorted(sets.items()):
        table = conditions or {c: condition_of(c) for c in files}
        lost: list[str] = []
        f, conds, xy = load_slide_set(dict(files), table, tolerance=tolerance, notes=lost)
        if notes is not None:
            notes += [f"{tissue}: {line}" for line in lost]
        for c, v in f.items():
            feats.setdefault(c, []).append(v)
        coords.append(xy)
        tissues += [tissue] * len(xy)
    stacked = {c: np.concatenate(v) for c, v in feats.items()}
    return stacked, conds, np.concatenate(coords), tissues

"""Build ProbeData from embedding files plus a labels CSV (label, split and a row key)."""

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from evaluation.embeddings_io import load_array, load_coords
from evaluation.probes.data import ProbeData, ProbeInputError

SPLIT_ALIASES = {
    "train": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
}


def normalise_split(value: str, where: str) -> str:
    """Map train / val|valid|validation / test (any case) to train, val, test."""
    split = SPLIT_ALIASES.get(value.strip().lower())
    if split is None:
        raise ProbeInputError(f"{where}: unknown split {value!r}; use train, val or test")
    return split


def build_probe_data(
    x: np.ndarray,
    labels: Sequence[str],
    splits: Sequence[str],
    classes: Sequence[str] | None = None,
    groups: Sequence[str] | None = None,
    group_name: str = "slide",
) -> ProbeData:
    """Split (N, D) embeddings by split names and encode string labels (classes sorted unless given).

    `groups` (a slide or patient id per row) is kept for the train rows, so a validation split
    held out of train can be grouped by it.
    """
    labels = [str(v) for v in labels]
    classes = list(classes) if classes is not None else sorted(set(labels))
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise ProbeInputError(f"labels {unknown} are not among the classes {classes}")
    y = np.array([index[v] for v in labels], dtype=np.int64)
    s = np.array(splits)
    parts = {name: (x[s == name], y[s == name]) for name in ("train", "val", "test")}
    groups_train = None if groups is None else np.array([str(g) for g in groups])[s == "train"]
    return ProbeData(
        *parts["train"],
        *parts["val"],
        *parts["test"],
        classes=classes,
        groups_train=groups_train,
        group_name=group_name,
    )


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ProbeInputError(f"{path}: the labels CSV is empty")
    missing = {"label", "split"} - set(rows[0])
    if missing:
        raise ProbeInputError(
            f"{path}: missing columns {sorted(missing)}; needs label, split and a key (slide,x,y / path / index)"
        )
    return rows


def _embedding_files(inputs: Sequence[str | Path]) -> list[Path]:
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            files += sorted(
                p for p in item.iterdir() if p.suffix.lower() in (".h5", ".hdf5", ".npy", ".pt")
            )
        elif item.is_file():
            files.append(item)
        else:
            raise ProbeInputError(f"{item}: no such embedding file or folder")
    if not files:
        raise ProbeInputError(f"no embedding files (.h5/.npy/.pt) under {[str(i) for i in inputs]}")
    return files


def load_labelled_embeddings(embeddings: Sequence[str | Path], labels_csv: str | Path) -> ProbeData:
    """Join embeddings with a labels CSV.

    The CSV needs ``label`` and ``split`` (train/val/test) and one way to find each row's embedding
    (a ``patient`` or ``slide`` column also groups the validation split held out of train):

    - ``slide, x, y``: the tile at level-0 (x, y) in ``<slide>.h5`` among `embeddings`;
    - ``path`` [+ ``index``]: an embedding file (relative to the CSV's folder) and its row (default 0);
    - ``index``: the row of the single embeddings file given;
    - none of these: CSV row i is row i of the single embeddings file given.
    """
    labels_csv = Path(labels_csv)
    rows = _read_csv(labels_csv)
    cols = set(rows[0])
    files = _embedding_files(embeddings) if embeddings else []
    feats: list[np.ndarray] = []
    if {"slide", "x", "y"} <= cols:
        by_name = {p.stem: p for p in files}
        lookup: dict[str, tuple[np.ndarray, dict[tuple[int, int], int]]] = {}
        for i, row in enumerate(rows):
            slide = row["slide"]
            if slide not in lookup:
                if slide not in by_name:
                    raise ProbeInputError(
                        f"{labels_csv} row {i + 2}: no embedding file '{slide}.h5' among the inputs"
                    )
                coords = load_coords(by_name[slide])
                if coords is None:
                    raise ProbeInputError(
                        f"{by_name[slide]}: has no 'coords' to match slide,x,y against"
                    )
                lookup[slide] = (
                    load_array(by_name[slide]),
                    {(int(x), int(y)): j for j, (x, y) in enumerate(coords)},
                )
            arr, where = lookup[slide]
            key = (int(float(row["x"])), int(float(row["y"])))
            if key not in where:
                raise ProbeInputError(
                    f"{labels_csv} row {i + 2}: no tile at (x, y) = {key} in {by_name[slide]}"
                )
            feats.append(arr[where[key]])
    elif "path" in cols:
        cache: dict[Path, np.ndarray] = {}
        for row in rows:
            p = Path(row["path"])
            p = p if p.is_absolute() else labels_csv.parent / p
            if p not in cache:
                cache[p] = load_array(p)
            i = int(row.get("index") or 0)
            if not 0 <= i < len(cache[p]):
                raise ProbeInputError(
                    f"{labels_csv}: index {i} out of range for {p} ({len(cache[p])} rows)"
                )
            feats.append(cache[p][i])
    else:
        if len(files) != 1:
            raise ProbeInputError(
                f"{labels_csv}: without slide,x,y or path columns, give exactly one embeddings file (got {len(files)})"
            )
        arr = load_array(files[0])
        if "index" in cols:
            idx = np.array([int(r["index"]) for r in rows])
            if idx.min() < 0 or idx.max() >= len(arr):
                raise ProbeInputError(
                    f"{labels_csv}: index out of range [0, {len(arr)}) for {files[0]}"
                )
            feats = list(arr[idx])
        elif len(arr) != len(rows):
            raise ProbeInputError(
                f"{labels_csv} has {len(rows)} rows but {files[0]} has {len(arr)}; add an index column"
            )
        else:
            feats = list(arr)
    splits = [normalise_split(r["split"], f"{labels_csv} row {i + 2}") for i, r in enumerate(rows)]
    # A patient groups tiles more strictly than a slide; either keeps a validation split honest.
    group_name = next((c for c in ("patient", "slide") if c in cols), None)
    return build_probe_data(
        np.stack(feats).astype(np.float32),
        [r["label"] for r in rows],
        splits,
        groups=[r[group_name] for r in rows] if group_name else None,
        group_name=group_name or "slide",
    )

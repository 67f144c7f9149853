"""Manifest CSV of a robustness cohort: per sample its biological label, centre, slide and optional group."""

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Accepted header names (case-insensitive), first match wins. They cover PathoROB's metadata
# (biological_class, medical_center, slide_id, subset) and croma's manifests (label,
# group_id, a confounder column such as center or scanner).
ALIASES = {
    "biology": ("biology", "label", "biological_class", "class"),
    "centre": ("centre", "center", "medical_center", "scanner", "site", "confounder"),
    "slide": ("slide", "slide_id", "group_id", "case", "case_id"),
    "group": ("group", "subset"),
    "index": ("index", "row", "embedding_index"),
    "path": ("path", "image_path", "tile_path"),
    "patch": ("patch_id", "patch"),
}
REQUIRED = ("biology", "centre", "slide")


class ManifestError(ValueError):
    """The manifest lacks a column or holds an unusable value."""


@dataclass(frozen=True)
class Manifest:
    """Columns of a manifest, one entry per sample (row)."""

    biology: np.ndarray
    centre: np.ndarray
    slide: np.ndarray
    group: np.ndarray | None
    index: np.ndarray | None
    path: np.ndarray | None
    patch: np.ndarray | None
    columns: dict[str, str]

    def __len__(self) -> int:
        return int(self.biology.shape[0])


def read_manifest(path: str | Path, centre_column: str | None = None) -> Manifest:
    """Read a manifest CSV.

    Required: biological label, centre (or scanner / site) and slide id; optional: group
    (e.g. PathoROB's 2x2 ``subset``), index (row into the embeddings file; default: the
    manifest's row order) and path. `centre_column` picks the confounder column by name
    when the file has several (e.g. both ``center`` and ``scanner``).

    Raises:
        ManifestError: missing file or columns (all missing ones named, with accepted names),
            empty cells in a required column, non-integer or negative indices.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: no such manifest file")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        rows = list(reader)
    lower = {h.strip().lower(): h for h in header}
    aliases = dict(ALIASES)
    if centre_column is not None:
        aliases["centre"] = (centre_column.lower(),)
    found = {
        key: next((lower[a] for a in names if a in lower), None) for key, names in aliases.items()
    }
    missing = [k for k in REQUIRED if found[k] is None]
    if missing:
        wanted = "; ".join(f"{k}: one of {', '.join(aliases[k])}" for k in missing)
        raise ManifestError(
            f"{path}: missing column(s) {', '.join(missing)} ({wanted}); has {header}"
        )
    if not rows:
        raise ManifestError(f"{path}: no rows")

    def column(key: str) -> np.ndarray | None:
        name = found[key]
        if name is None:
            return None
        values = np.array([(r.get(name) or "").strip() for r in rows], dtype=object)
        empty = np.flatnonzero(values == "")
        if empty.size and key in (*REQUIRED, "group", "index"):
            raise ManifestError(
                f"{path}: column {name!r} is empty in {empty.size} row(s), first at data row {empty[0] + 1}"
            )
        return values

    index = column("index")
    if index is not None:
        try:
            index = index.astype(np.int64)
        except ValueError as err:
            raise ManifestError(f"{path}: column {found['index']!r} must hold integers") from err
        if (index < 0).any():
            raise ManifestError(f"{path}: column {found['index']!r} has negative indices")
    return Manifest(
        biology=column("biology"),
        centre=column("centre"),
        slide=column("slide"),
        group=column("group"),
        index=index,
        path=column("path"),
        patch=column("patch"),
        columns={k: v for k, v in found.items() if v is not None},
    )


def align(embeddings: np.ndarray, manifest: Manifest, name: str = "embeddings") -> np.ndarray:
    """Rows of `embeddings` in manifest order: by its index column, else one row per manifest row.

    Raises:
        ManifestError: an index beyond the file, or row counts that differ without an index.
    """
    if manifest.index is None:
        if embeddings.shape[0] != len(manifest):
            raise ManifestError(
                f"{name} has {embeddings.shape[0]} rows, the manifest {len(manifest)}; add an "
                "index column to pick rows, or pass embeddings in manifest order"
            )
        return embeddings
    if int(manifest.index.max()) >= embeddings.shape[0]:
        raise ManifestError(
            f"manifest index {int(manifest.index.max())} is beyond the {embeddings.shape[0]} rows of {name}"
        )
    return embeddings[manifest.index]

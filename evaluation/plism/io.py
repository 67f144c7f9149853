"""Read slide features for PLISM (plismbench `features.npy` layout or vitkd HDF5) and write plismbench's layout."""

import csv
from collections.abc import Iterable, Mapping
from pathlib import Path

import h5py
import numpy as np

from evaluation.plism.groups import Condition
from evaluation.plism.register import RegistrationError, register_tiles
from slides.atomic import atomic_path


class SlideSetError(ValueError):
    """A set of slide feature files cannot be evaluated together; the message says why and how to fix it."""


def read_h5_features(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a vitkd/TRIDENT embedding file: ``features`` (N, D) and ``coords`` (N, 2) level-0 (x, y)."""
    path = Path(path)
    with h5py.File(path, "r") as f:
        for key in ("features", "coords"):
            if key not in f:
                raise SlideSetError(
                    f"{path}: no '{key}' dataset; expected a vitkd/TRIDENT embedding HDF5 with 'features' and 'coords'"
                )
        feats, coords = np.asarray(f["features"][:]), np.asarray(f["coords"][:], dtype=np.int64)
    if feats.ndim != 2 or coords.shape != (feats.shape[0], 2):
        raise SlideSetError(
            f"{path}: features {feats.shape} and coords {coords.shape} do not match (N, D) / (N, 2)"
        )
    return feats, coords


def read_encoder_name(files: Iterable[str | Path]) -> str | None:
    """The ``encoder`` attribute the embedding files agree on (vitkd.embed writes it), else None."""
    names = set()
    for path in map(Path, files):
        if path.suffix != ".h5":
            return None
        with h5py.File(path, "r") as f:
            value = f["features"].attrs.get("encoder") if "features" in f else None
        names.add(value.decode() if isinstance(value, bytes) else value)
    return names.pop() if len(names) == 1 else None


def read_plismbench_features(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read plismbench's ``features.npy`` (n, 3 + d): columns level, x, y then the features.

    Layout confirmed in owkin/plism-benchmark ``plismbench/engine/extract/utils.py``
    (``process_imgs`` stacks the tile id's (level, x, y) before the features; ``save_features``
    sorts rows by (x, y)). Returns features (n, d) and coords (n, 2) as (x, y).
    """
    arr = np.load(Path(path))
    if arr.ndim != 2 or arr.shape[1] < 4:
        raise SlideSetError(
            f"{path}: expected (n_tiles, 3 + dim) with columns level, x, y, features; got {arr.shape}"
        )
    return arr[:, 3:], np.rint(arr[:, 1:3]).astype(np.int64)


def parse_condition(slide: str) -> Condition:
    """(staining, scanner) from a PLISM slide name ``<staining>_<scanner>[_...]`` (as plismbench parses it)."""
    parts = Path(slide).name.split("_")
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise SlideSetError(
            f"cannot read (staining, scanner) from slide name {slide!r}: name slides "
            "'<staining>_<scanner>...' (e.g. GMH_S60_to_GMH_S60.tif) or pass a conditions CSV "
            "with columns slide, staining, scanner"
        )
    return parts[0], parts[1]


def read_conditions_csv(path: str | Path) -> dict[str, Condition]:
    """Read a CSV with columns ``slide, staining, scanner`` (slide = file/folder name without .h5)."""
    path = Path(path)
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        needed = {"slide", "staining", "scanner"}
        if reader.fieldnames is None or not needed <= set(reader.fieldnames):
            raise SlideSetError(
                f"{path}: needs columns {sorted(needed)}, found {reader.fieldnames}"
            )
        return {row["slide"]: (row["staining"], row["scanner"]) for row in reader}


def find_slide_files(inputs: Iterable[str | Path]) -> dict[str, Path]:
    """Slide name -> feature file, from .h5 files, folders of .h5 files, or plismbench extractor folders."""
    found: dict[str, Path] = {}
    for item in map(Path, inputs):
        if item.is_file():
            candidates = [item]
        elif item.is_dir():
            candidates = sorted(item.glob("*.h5")) + sorted(item.glob("*/features.npy"))
        else:
            raise SlideSetError(f"{item}: no such file or folder")
        for c in candidates:
            name = c.parent.name if c.name == "features.npy" else c.stem
            if name in found:
                raise SlideSetError(f"slide {name!r} appears twice: {found[name]} and {c}")
            found[name] = c
    if not found:
        raise SlideSetError(
            f"no '*.h5' or '*/features.npy' feature files under {list(map(str, inputs))}"
        )
    return found


def _sorted_by_xy(feats: np.ndarray, coords: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.lexsort((coords[:, 1], coords[:, 0]))
    return feats[order], coords[order]


def load_slide_set(
    files: Mapping[str, Path],
    conditions: Mapping[str, Condition] | None = None,
    tiles_subset: np.ndarray | None = None,
    tolerance: int = 0,
    notes: list[str] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, Condition], np.ndarray]:
    """Load and align registered slides: tiles matched by position, rows sorted by (x, y).

    Args:
        files: slide name -> .h5 or features.npy path.
        conditions: slide name -> (staining, scanner); parsed from the names when None.
        tiles_subset: optional row indices (after sorting) to keep, like plismbench's subsets.
        tolerance: pixels by which one tile's position may differ between slides; tiles that
            not every slide has are dropped (see :func:`register_tiles`).
        notes: when given, a line is appended for every slide that lost tiles.

    Returns:
        features per slide (float32), conditions per slide, and the shared (n, 2) coords.
    """
    if not files:
        raise SlideSetError("no slide feature files given")
    loaded = {}
    for name, path in sorted(files.items()):
        f, c = read_plismbench_features(path) if path.suffix == ".npy" else read_h5_features(path)
        loaded[name] = (f.astype(np.float32, copy=False), c)
    try:
        feats, ref_coords, dropped = register_tiles(loaded, tolerance)
    except RegistrationError as err:
        raise SlideSetError(f"{err} (files: {sorted(str(p) for p in files.values())})") from err
    if notes is not None:
        notes += [
            f"{name}: {n} of {len(loaded[name][1])} tiles dropped (not in every slide)"
            for name, n in dropped.items()
            if n
        ]
    if tiles_subset is not None:
        idx = np.asarray(tiles_subset, dtype=np.int64)
        if idx.ndim != 1 or idx.size == 0 or idx.min() < 0 or idx.max() >= ref_coords.shape[0]:
            raise SlideSetError(
                f"tiles subset must be 1-D indices in [0, {ref_coords.shape[0]}), got shape {idx.shape}"
            )
        feats = {k: v[idx] for k, v in feats.items()}
        ref_coords = ref_coords[idx]
    if conditions is None:
        conds = {name: parse_condition(name) for name in feats}
    else:
        missing = sorted(set(feats) - set(conditions))
        if missing:
            raise SlideSetError(
                f"no (staining, scanner) in the conditions table for slides {missing}"
            )
        conds = {name: tuple(conditions[name]) for name in feats}  # type: ignore[misc]
    return feats, conds, ref_coords


def write_plismbench_layout(
    h5_files: Iterable[str | Path], out_dir: str | Path, extractor: str, level: int = 0
) -> list[Path]:
    """Write vitkd HDF5 embeddings as ``<out_dir>/<extractor>/<slide>/features.npy`` (n, 3 + d) float32.

    Columns are (level, x, y, features...), rows sorted by (x, y), as plismbench's ``save_features``
    writes them, so ``plismbench evaluate`` reads the result unchanged. plismbench keeps only
    slide folders whose name contains ``_to_GMH_S60.tif`` and parses ``<staining>_<scanner>`` from
    them, so name the input files after the PLISM slides.
    """
    written = []
    for path in map(Path, h5_files):
        feats, coords = read_h5_features(path)
        feats, coords = _sorted_by_xy(feats, coords)
        arr = np.concatenate(
            [
                np.full((len(coords), 1), level, np.float32),
                coords.astype(np.float32),
                feats.astype(np.float32),
            ],
            axis=1,
        )
        dest = Path(out_dir) / extractor / path.stem / "features.npy"
        with atomic_path(dest) as tmp:
            np.save(tmp, arr)
        written.append(dest)
    return written

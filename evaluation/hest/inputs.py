"""HEST inputs: split files, the HEST-bench task layout, or any embeddings + targets table."""

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from evaluation.embeddings_io import load_array


class HestInputError(ValueError):
    """HEST inputs are missing or inconsistent; the message names the file and the fix."""


@dataclass
class HestTable:
    """Embeddings (N, D), targets (N, T) and the sample (patient/slide) id of each row."""

    x: np.ndarray
    y: np.ndarray
    sample_ids: np.ndarray
    targets: list[str]


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV as dicts (error when missing or empty)."""
    if not path.is_file():
        raise HestInputError(f"{path}: no such file")
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise HestInputError(f"{path}: empty CSV")
    return rows


def read_folds(splits_dir: str | Path) -> list[tuple[list[str], list[str]]]:
    """(train ids, test ids) per fold from ``train_k.csv`` / ``test_k.csv`` (column ``sample_id``), as HEST."""
    splits_dir = Path(splits_dir)
    folds = []
    k = 0
    while (splits_dir / f"train_{k}.csv").is_file():
        ids = []
        for part in ("train", "test"):
            rows = read_csv_rows(splits_dir / f"{part}_{k}.csv")
            if "sample_id" not in rows[0]:
                raise HestInputError(f"{splits_dir / f'{part}_{k}.csv'}: needs a sample_id column")
            ids.append([r["sample_id"] for r in rows])
        folds.append((ids[0], ids[1]))
        k += 1
    if not folds:
        raise HestInputError(
            f"{splits_dir}: no train_0.csv/test_0.csv split files (patient-level folds)"
        )
    return folds


def load_table(
    embeddings: str | Path,
    targets_csv: str | Path,
    target_cols: list[str] | None = None,
    log1p: bool = False,
) -> HestTable:
    """Generic mode: one embeddings file and a CSV with ``sample_id``, optional ``index`` and target columns.

    CSV row i is embeddings row i unless an ``index`` column says otherwise; every other column
    (or only `target_cols`) is a numeric target. `log1p` applies log(1 + y) as HEST does to counts.
    """
    path = Path(targets_csv)
    rows = read_csv_rows(path)
    if "sample_id" not in rows[0]:
        raise HestInputError(
            f"{path}: needs a sample_id column (patient or slide id used by the split files)"
        )
    x = load_array(embeddings)
    cols = target_cols or [c for c in rows[0] if c not in ("sample_id", "index", "barcode")]
    missing = sorted(set(cols) - set(rows[0]))
    if missing or not cols:
        raise HestInputError(f"{path}: target columns {missing or cols} not found")
    try:
        y = np.array([[float(r[c]) for c in cols] for r in rows], dtype=np.float64)
    except ValueError as err:
        raise HestInputError(
            f"{path}: non-numeric target value ({err}); list targets with --targets-cols"
        ) from err
    idx = np.array([int(r["index"]) for r in rows]) if "index" in rows[0] else np.arange(len(rows))
    if len(idx) and (idx.max() >= len(x) or ("index" not in rows[0] and len(rows) != len(x))):
        raise HestInputError(
            f"{path} has {len(rows)} rows, {embeddings} has {len(x)}; add an index column"
        )
    y = np.log1p(y) if log1p else y
    return HestTable(x[idx], y, np.array([r["sample_id"] for r in rows]), cols)


def _read_expression(expr_path: Path, genes: list[str], barcodes: list[str]) -> np.ndarray:
    """Counts (n_barcodes, n_genes) from an .h5ad (needs anndata) or a same-stem .csv (barcode, genes...)."""
    csv_path = expr_path.with_suffix(".csv")
    if expr_path.suffix == ".h5ad" and not csv_path.is_file():
        try:
            import anndata
        except ImportError as err:
            raise HestInputError(
                f"{expr_path}: reading .h5ad needs the 'anndata' package, which is not installed; "
                f"install it, or export the expression to {csv_path.name} (first column barcode, one column per gene)"
            ) from err
        adata = anndata.read_h5ad(expr_path)
        sub = adata[barcodes, genes]
        return np.asarray(sub.X.todense() if hasattr(sub.X, "todense") else sub.X, dtype=np.float64)
    rows = read_csv_rows(csv_path)
    key = next(iter(rows[0]))
    table = {r[key]: r for r in rows}
    try:
        return np.array([[float(table[b][g]) for g in genes] for b in barcodes], dtype=np.float64)
    except KeyError as err:
        raise HestInputError(f"{csv_path}: missing barcode or gene {err}") from err


def load_bench_task(
    task_dir: str | Path, embed_dir: str | Path, gene_list: str = "var_50genes.json"
) -> tuple[HestTable, list[tuple[list[str], list[str]]]]:
    """A HEST-bench task folder (``splits/``, ``var_50genes.json``, expression files) + precomputed embeddings.

    Layout as mahmoodlab/HEST ``src/hest/bench/benchmark.py``: split CSVs list ``sample_id`` and
    ``expr_path`` (relative to the task folder); embeddings are ``<embed_dir>/<sample_id>.h5``
    with ``embeddings`` (or ``features``) and ``barcodes``. Expression is log1p'd like HEST's
    ``normalize=True`` default.
    """
    task_dir, embed_dir = Path(task_dir), Path(embed_dir)
    folds = read_folds(task_dir / "splits")
    genes_file = task_dir / gene_list
    if not genes_file.is_file():
        raise HestInputError(f"{genes_file}: missing gene list (JSON with a 'genes' list)")
    genes = json.loads(genes_file.read_text())["genes"]
    expr: dict[str, Path] = {}
    for k in range(len(folds)):
        for part in ("train", "test"):
            for r in read_csv_rows(task_dir / "splits" / f"{part}_{k}.csv"):
                expr[r["sample_id"]] = task_dir / r["expr_path"]
    xs, ys, ids = [], [], []
    for sample_id, expr_path in sorted(expr.items()):
        h5 = embed_dir / f"{sample_id}.h5"
        if not h5.is_file():
            raise HestInputError(
                f"{h5}: no embeddings for sample {sample_id}; embed the HEST patches first"
            )
        with h5py.File(h5, "r") as f:
            if "barcodes" not in f:
                raise HestInputError(
                    f"{h5}: needs a 'barcodes' dataset to match spots to expression"
                )
            barcodes = [
                b.decode() if isinstance(b, bytes) else str(b)
                for b in np.asarray(f["barcodes"][:]).reshape(-1)
            ]
        xs.append(load_array(h5))
        ys.append(np.log1p(_read_expression(expr_path, genes, barcodes)))
        ids += [sample_id] * len(barcodes)
    return HestTable(np.concatenate(xs), np.concatenate(ys), np.array(ids), genes), folds

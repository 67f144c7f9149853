"""Run the HEST ridge probe over patient-level folds."""

import numpy as np
from tqdm.auto import tqdm

from evaluation.hest.inputs import HestInputError, HestTable
from evaluation.hest.regression import HEST_SEED, hest_fold, summarise_folds


def run_hest(
    table: HestTable,
    folds: list[tuple[list[str], list[str]]],
    n_components: int = 256,
    seed: int = HEST_SEED,
    progress: bool = True,
    constant_gene: str = "nan",
) -> dict[str, object]:
    """Fit/score every fold; mean over targets then over folds.

    Each split's rows are taken in its split file's order (then the table's row order within a
    sample), as HEST concatenates them: the PCA solver is randomized, so row order matters.
    """
    results = []
    for k, (train_ids, test_ids) in enumerate(tqdm(folds, desc="HEST folds", disable=not progress)):
        overlap = sorted(set(train_ids) & set(test_ids))
        if overlap:
            raise HestInputError(
                f"fold {k}: samples {overlap} are in both train and test; folds must be patient-level"
            )
        tr, te = _rows_in_order(table, train_ids), _rows_in_order(table, test_ids)
        if not tr.size or not te.size:
            raise HestInputError(
                f"fold {k}: no rows for its train or test sample ids; check sample_id values"
            )
        fold = hest_fold(
            table.x[tr], table.y[tr], table.x[te], table.y[te], n_components, seed, constant_gene
        )
        results.append({"fold": k, **fold})
    return summarise_folds(results, table.targets)


def _rows_in_order(table: HestTable, sample_ids: list[str]) -> np.ndarray:
    """Row indices of the given samples, sample by sample in the given order."""
    parts = [np.flatnonzero(table.sample_ids == s) for s in dict.fromkeys(sample_ids)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

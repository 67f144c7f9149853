"""Run the HEST ridge probe over patient-level folds."""

import numpy as np
from tqdm.auto import tqdm

from evaluation.hest.inputs import HestInputError, HestTable
from evaluation.hest.regression import hest_fold, summarise_folds


def run_hest(
    table: HestTable,
    folds: list[tuple[list[str], list[str]]],
    n_components: int = 256,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, object]:
    """Fit/score every fold (rows selected by sample id); mean over targets then over folds."""
    results = []
    for k, (train_ids, test_ids) in enumerate(tqdm(folds, desc="HEST folds", disable=not progress)):
        overlap = sorted(set(train_ids) & set(test_ids))
        if overlap:
            raise HestInputError(
                f"fold {k}: samples {overlap} are in both train and test; folds must be patient-level"
            )
        tr, te = np.isin(table.sample_ids, train_ids), np.isin(table.sample_ids, test_ids)
        if not tr.any() or not te.any():
            raise HestInputError(
                f"fold {k}: no rows for its train or test sample ids; check sample_id values"
            )
        results.append(
            {
                "fold": k,
                **hest_fold(table.x[tr], table.y[tr], table.x[te], table.y[te], n_components, seed),
            }
        )
    return summarise_folds(results, table.targets)

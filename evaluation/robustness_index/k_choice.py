"""Choice of k for the Robustness Index: PathoROB's per-dataset defaults or the best kNN balanced accuracy."""

from collections.abc import Sequence

import numpy as np

# PathoROB `get_median_k_opt_given_dataset` (robustness_index.py, commit 01ac017): the median
# over its benchmarked models of the k maximising biological kNN balanced accuracy.
PATHOROB_DEFAULT_K = {"tcga": 61, "camelyon": 11, "tolkach_esca": 46}

# PathoROB `get_max_k`: camelyon 600, tcga 600 (1200 paired), tolkach_esca 1000.
PATHOROB_K_GRID_MAX = 600


def k_grid(k_max: int) -> list[int]:
    """PathoROB's k grid (`get_k_values`): 1, 3, 5, 7, 9, then 11, 21, 31, ... below `k_max`."""
    return [1, 3, 5, 7, 9, *range(11, k_max, 10)]


def knn_balanced_accuracy(
    biology: np.ndarray, index: np.ndarray, ks: Sequence[int]
) -> dict[int, float]:
    """Balanced accuracy of the majority vote of the first k neighbours, for each k.

    As PathoROB's `evaluate_knn_accuracy`: the prediction is ``scipy.stats.mode`` of the
    neighbours' class codes, so a tie goes to the smallest code; balanced accuracy is the
    mean recall over the classes present (sklearn's `balanced_accuracy_score`).

    Args:
        biology: (n,) integer class codes (sorted-label order, as ``LabelEncoder``).
        index: (n, K) neighbours, nearest first, K >= max(ks).
        ks: neighbour counts to score.
    """
    n_classes = int(biology.max()) + 1
    classes = np.unique(biology)
    votes = np.zeros((biology.shape[0], n_classes), dtype=np.int64)
    rows = np.arange(biology.shape[0])
    wanted = set(int(k) for k in ks)
    out: dict[int, float] = {}
    for j in range(max(wanted)):
        votes[rows, biology[index[:, j]]] += 1  # one vote per row per column: no duplicates
        if j + 1 in wanted:
            pred = votes.argmax(axis=1)  # first maximum = smallest code, as scipy's mode
            recalls = [np.mean(pred[biology == c] == c) for c in classes]
            out[j + 1] = float(np.mean(recalls))
    return {int(k): out[int(k)] for k in ks}

"""PathoROB's Average Performance Drop (APD): the mean relative accuracy a confounded training set costs."""

import numpy as np


def apd(accuracies: np.ndarray) -> float:
    """APD of a probe sweep: ``mean_i( mean_{s>0}( a[s, i] / a[0, i] ) - 1 )``.

    `accuracies` is (n_splits, n_replicates), row 0 the balanced split. The ratio is taken
    per replicate, averaged over the confounded splits, minus one, then averaged over
    replicates. 0: no drop; -0.1: a 10 % drop. Source: PathoROB ``pathorob/apd/utils.py``
    `compute_apd` and ``apd.py`` (``np.mean(compute_apd(...))``) at commit ``5472795``;
    croma 1.0.1 vendors the same reduction as `croma.apd`.

    Raises:
        ValueError: not (>= 2, >= 1), non-finite, or a baseline accuracy <= 0.
    """
    acc = np.asarray(accuracies, dtype=float)
    if acc.ndim != 2 or acc.shape[0] < 2 or acc.shape[1] < 1:
        raise ValueError(f"accuracies must be (n_splits >= 2, n_replicates >= 1), got {acc.shape}")
    if not np.isfinite(acc).all():
        raise ValueError("accuracies must be finite")
    if not (acc[0] > 0).all():
        raise ValueError(f"every baseline accuracy must be positive, got {acc[0].min()}")
    return float(np.mean((acc[1:] / acc[0]).mean(axis=0) - 1))

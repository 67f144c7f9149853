"""nIPD (croma): chance-normalised probe degradation integrated over the centre-class Cramér's V."""

import numpy as np


def nipd(accuracies: np.ndarray, cramers_v: np.ndarray, chance: float) -> float:
    """Normalised Integrated Performance Degradation (croma 1.0.1, ``croma/downstream/nipd.py``).

    ``g(V) = (mean_acc(V) - mean_acc(0)) / (mean_acc(0) - chance)``, the mean over repeated
    probe trainings at each sampled V, and nIPD = the trapezoidal area of g over V in [0, 1].
    -0.5 is a linear fall from the baseline to chance; 0 no net change.

    Args:
        accuracies: (n_splits, n_repeats) balanced accuracies of probes trained with rising
            centre-class correlation; row 0 the balanced baseline (V = 0).
        cramers_v: (n_splits,) strictly increasing from 0 to 1.
        chance: chance balanced accuracy, 1 / number of classes.

    Raises:
        ValueError: malformed matrix or V, chance outside [0, 1), baseline at or below chance.
    """
    acc = np.asarray(accuracies, dtype=float)
    if acc.ndim != 2 or acc.shape[0] < 2 or acc.shape[1] < 1:
        raise ValueError(
            f"accuracies must be (n_splits >= 2, n_repeats >= 1) with row 0 the baseline, got {acc.shape}"
        )
    if not np.isfinite(acc).all():
        raise ValueError("accuracies must be finite")
    v = np.asarray(cramers_v, dtype=float)
    if v.shape != (acc.shape[0],):
        raise ValueError(
            f"cramers_v needs one value per accuracy row ({acc.shape[0]}), got shape {v.shape}"
        )
    if (
        not np.isfinite(v).all()
        or not (np.diff(v) > 0).all()
        or not (np.isclose(v[0], 0) and np.isclose(v[-1], 1))
    ):
        raise ValueError("cramers_v must be finite, strictly increasing, from 0 to 1")
    if not 0.0 <= chance < 1.0:
        raise ValueError(f"chance must be in [0, 1), got {chance}")
    mean = acc.mean(axis=1)
    skill = mean[0] - chance
    if skill <= 0:
        raise ValueError(f"baseline balanced accuracy {mean[0]} is not above chance {chance}")
    g = (mean - mean[0]) / skill
    return float(np.sum(np.diff(v) * (g[:-1] + g[1:]) / 2.0))

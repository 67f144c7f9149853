"""Distribution summaries of per-sample margins: median, lower-tail mean (LTM) and F(0)."""

import numpy as np


def tail_mean(values: np.ndarray, alpha: float = 0.10) -> tuple[float, float]:
    """(q_alpha, LTM_alpha): the alpha quantile and the mean of the values at or below it.

    croma (`croma/metrics/tail.py`, ``compute_tail_metrics``): ``q = percentile(v, 100 alpha)``
    with linear interpolation, ``LTM = mean(v[v <= q])``; non-finite values ignored; NaN for
    no finite value. LTM10 is the mean of the worst 10 %.
    """
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    q = float(np.percentile(v, alpha * 100))
    return q, float(v[v <= q].mean())


def confounder_dominant_fraction(values: np.ndarray) -> float:
    """F(0): share of finite margins ``<= 0`` (an exact tie counts against biology), as croma."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(np.mean(v <= 0.0)) if v.size else float("nan")

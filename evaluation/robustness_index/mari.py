"""MaRI (croma): the Robustness Index with each SO / OS neighbour weighted by exp(-distance / tau)."""

import numpy as np

from evaluation.robustness_index.neighbour_types import neighbour_types
from evaluation.robustness_index.tail import tail_mean

# croma's TAU_FALLBACK: used only when no typed distance puts tau on a scale; then the
# weights cannot change the score (no typed neighbour, or all at distance 0).
TAU_FALLBACK = 0.2


def median_typed_distance(typed_distances: np.ndarray) -> float:
    """croma's auto tau: the median cosine distance of the SO/OS neighbours in the top k."""
    d = typed_distances[np.isfinite(typed_distances)]
    return float(np.median(d)) if d.size else float("nan")


def mari_from_neighbours(
    biology: np.ndarray,
    centre: np.ndarray,
    index: np.ndarray,
    distance: np.ndarray,
    k: int,
    tau: float | None = None,
    alpha: float = 0.10,
) -> dict:
    """Margin-aware RI (Grisi et al. 2026, package ``croma`` 1.0.1, ``croma/metrics/mari.py``).

    ``MaRI = sum_i sum_{j<=k} w_ij [SO_ij] / sum_i sum_{j<=k} w_ij [SO_ij or OS_ij]`` with
    ``w_ij = exp(-d_ij / tau)``, ``d`` the cosine distance ``1 - cos``. ``tau`` defaults to
    the median d over all SO/OS neighbours in the top k (per model, so the weighting sits on
    each embedding's own scale); with tau -> inf MaRI is RI. Per query the same ratio gives
    ``mari_i`` (NaN without an SO/OS neighbour); ``support`` is the share of queries where
    it is defined. croma's log-space fallback for underflowing weights is not needed here:
    d <= 2 and tau is a median typed distance, so weights stay >= exp(-2 / tau).

    Args:
        biology: (n,) class codes.
        centre: (n,) centre codes.
        index: (n, K) neighbours, nearest first, K >= k.
        distance: (n, K) their cosine distances.
        k: neighbours used.
        tau: temperature; None: the median typed distance (croma's recommended tau).
        alpha: tail share for ``q`` / ``ltm`` of the per-query values.
    """
    types = neighbour_types(biology, centre, index[:, :k])
    d = distance[:, :k]
    typed = types.so | types.os
    notes = []
    if tau is None:
        tau = median_typed_distance(d[typed])
        if not np.isfinite(tau) or tau <= 0:
            notes.append(f"median typed distance is {tau}: tau falls back to {TAU_FALLBACK}")
            tau = TAU_FALLBACK
    elif tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    w = np.exp(-d / tau)
    so = np.where(types.so, w, 0.0).sum(axis=1)
    os_ = np.where(types.os, w, 0.0).sum(axis=1)
    informative = typed.any(axis=1)
    per_query = np.full(so.shape[0], np.nan)
    per_query[informative] = so[informative] / (so + os_)[informative]
    total = so.sum() + os_.sum()
    q, ltm = tail_mean(per_query[informative], alpha)
    if not informative.any():
        notes.append(f"no SO or OS neighbour among the first {k}: MaRI is 0/0")
    return {
        "mari": float(so.sum() / total) if informative.any() else float("nan"),
        "tau": float(tau),
        "k": int(k),
        "support": float(informative.mean()),
        "median": float(np.median(per_query[informative])) if informative.any() else float("nan"),
        "q": q,
        "ltm": ltm,
        "alpha": alpha,
        "per_query": per_query,
        "note": "; ".join(notes) or None,
    }

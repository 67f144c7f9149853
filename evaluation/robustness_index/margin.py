"""CRoMa (croma): per-sample signed margin between the nearest other-class/same-centre and same-class/other-centre neighbours."""

import numpy as np

from evaluation.robustness_index.tail import confounder_dominant_fraction, tail_mean

# croma's CROMA_HEADLINE_M: typed neighbours averaged per side.
CROMA_M = 5


def croma_per_sample(so: np.ndarray, os: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``CRoMa_i = (d_OS - d_SO) / (d_OS + d_SO)`` and why some are NaN.

    ``d_SO`` / ``d_OS``: mean cosine distance to the m nearest same-class/other-centre and
    other-class/same-centre neighbours (croma ``_sample_croma_with_causes``). > 0: the
    biological match is closer than the confounder impostor.

    Args:
        so: (n, m) distances, ``inf`` where fewer than m SO neighbours exist.
        os: (n, m) the same for OS.

    Returns:
        (values, unresolved, zero_distance): values NaN where a side lacks m neighbours
        (unresolved) or both means are 0 (zero_distance).
    """
    unresolved = ~np.isfinite(so).all(axis=1) | ~np.isfinite(os).all(axis=1)
    d_so, d_os = so.mean(axis=1), os.mean(axis=1)
    denom = d_os + d_so
    zero = ~unresolved & (denom == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        values = (d_os - d_so) / denom
    values[unresolved | zero] = np.nan
    return values, unresolved, zero


def croma_summary(
    so: np.ndarray, os: np.ndarray, group: np.ndarray | None = None, alpha: float = 0.10
) -> dict:
    """CRoMa and its distribution (Grisi et al. 2026; ``croma`` 1.0.1, ``croma/metrics/croma.py``).

    ``croma`` is the median of ``CRoMa_i`` (paired design: the median of the per-group
    medians), ``ltm`` the mean of the worst ``alpha`` share (LTM10 at 0.1), ``q`` that
    quantile and ``f0`` the share ``<= 0``. croma requires every sample to be scoreable and
    raises otherwise; here the summaries are NaN with a ``note`` giving the counts, and
    ``support`` is the scoreable share.

    Args:
        so: (n, m) distances to the m nearest SO neighbours (see `usable_neighbours`).
        os: (n, m) distances to the m nearest OS neighbours.
        group: (n,) group codes of a paired design, or None.
        alpha: tail share.
    """
    values, unresolved, zero = croma_per_sample(so, os)
    m = so.shape[1]
    defined = np.isfinite(values)
    out = {"m": int(m), "support": float(defined.mean()), "alpha": alpha, "per_sample": values}
    notes = []
    if unresolved.any():
        notes.append(
            f"{int(unresolved.sum())}/{values.size} sample(s) lack {m} SO and {m} OS neighbours "
            "outside their own slide"
        )
    if zero.any():
        notes.append(
            f"{int(zero.sum())}/{values.size} sample(s) have d_OS + d_SO = 0 (duplicated rows?)"
        )
    if notes:
        nan = float("nan")
        return {**out, "croma": nan, "ltm": nan, "q": nan, "f0": nan, "note": "; ".join(notes)}
    if group is None:
        value = float(np.median(values))
    else:
        value = float(np.median([np.median(values[group == g]) for g in np.unique(group)]))
    q, ltm = tail_mean(values, alpha)
    return {
        **out,
        "croma": value,
        "ltm": ltm,
        "q": q,
        "f0": confounder_dominant_fraction(values),
        "note": None,
    }

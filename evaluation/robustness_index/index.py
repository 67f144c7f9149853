"""PathoROB's Robustness Index: the share of same-biology/other-centre among the informative neighbours."""

from collections.abc import Sequence

import numpy as np
import torch

from evaluation.robustness_index.inputs import CodedInputs, code_inputs
from evaluation.robustness_index.k_choice import PATHOROB_K_GRID_MAX, k_grid, knn_balanced_accuracy
from evaluation.robustness_index.neighbour_types import neighbour_types
from evaluation.robustness_index.neighbours import usable_counts, usable_neighbours

# PathoROB commit whose definitions this file follows (bifold-pathomics/PathoROB,
# pathorob/robustness_index/robustness_index_utils.py and robustness_index.py).
PATHOROB_COMMIT = "01ac01700ed501f816741f29c98ba725263e3073"


def ri_curve(so: np.ndarray, os: np.ndarray) -> np.ndarray:
    """RI(k) for k = 1..K: ``sum_i sum_{j<=k} SO_ij / sum_i sum_{j<=k} (SO_ij + OS_ij)``.

    PathoROB (`aggregate_stats`) divides the cumulative SO and OS counts by the cumulative
    total of all four types first; the total cancels, leaving this ratio. NaN where no SO or
    OS neighbour has been seen yet.
    """
    so_cum = so.sum(axis=0).cumsum()
    os_cum = os.sum(axis=0).cumsum()
    with np.errstate(invalid="ignore", divide="ignore"):
        return so_cum / (so_cum + os_cum)


def bootstrap_ri(
    so_count: np.ndarray, os_count: np.ndarray, n_bootstrap: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """Mean and std (ddof=1) of RI over query resamples with replacement.

    PathoROB's `bootstrapped_robustness_index`: each replicate draws n query rows with
    replacement (``np.random.choice``) and recomputes ``sum SO / sum (SO + OS)``. A
    ``RandomState(seed)`` gives the same draws as PathoROB after ``np.random.seed(seed)``.
    (PathoROB's `save_total_stats` writes the bootstrap *mean* into its
    ``robustness_index-std-k_opt`` summary field; the std here is the one its
    `bootstrapped_robustness_index` computes.)

    Args:
        so_count: (n,) SO neighbours among each query's first k.
        os_count: (n,) OS neighbours among each query's first k.
    """
    if n_bootstrap < 2:
        return float("nan"), float("nan")
    rs = np.random.RandomState(seed)
    n = so_count.shape[0]
    values = np.empty(n_bootstrap)
    for b in range(n_bootstrap):
        pick = rs.choice(n, size=n, replace=True)
        so_b, os_b = so_count[pick].sum(), os_count[pick].sum()
        values[b] = so_b / (so_b + os_b) if so_b + os_b > 0 else np.nan
    return float(np.mean(values)), float(np.std(values, ddof=1))


def undefined_reason(coded: CodedInputs) -> str | None:
    """Why RI means nothing on these labels, or None.

    With one biological class there is no OS neighbour and RI is 1 by construction; with
    one centre there is no SO neighbour and RI is 0 by construction. Neither is a result.
    """
    if coded.biology_names.size < 2:
        return (
            f"only one biological class ({coded.biology_names[0]}): RI would be 1 by construction"
        )
    if coded.centre_names.size < 2:
        return f"only one centre ({coded.centre_names[0]}): RI would be 0 by construction"
    return None


def single_class_centres(coded: CodedInputs) -> list[str]:
    """Centres holding one biological class: their SO/OS balance reflects sampling, not robustness."""
    out = []
    for c, name in enumerate(coded.centre_names):
        if np.unique(coded.biology[coded.centre == c]).size < 2:
            out.append(str(name))
    return out


def prepare(
    embeddings: np.ndarray,
    biology: Sequence,
    centre: Sequence,
    slide: Sequence | None,
    group: Sequence | None,
    k: int | None,
    k_grid_max: int,
) -> tuple[CodedInputs, dict, str | None, list[int]]:
    """Code and check the inputs; return them, the shared result fields, an undefined reason
    (or None) and the k candidates (``[k]`` when k is given)."""
    coded = code_inputs(embeddings, biology, centre, slide, group)
    base = {
        "n": coded.n,
        "n_biology": int(coded.biology_names.size),
        "n_centres": int(coded.centre_names.size),
        "warnings": [],
    }
    centres_one_class = single_class_centres(coded)
    if centres_one_class:
        base["warnings"].append(
            f"centre(s) with one biological class: {', '.join(centres_one_class)}"
        )
    reason = undefined_reason(coded)
    max_usable = int(usable_counts(coded.slide, coded.group).min())
    if max_usable < 1:
        raise ValueError("some sample has no usable neighbour (its group holds only its own slide)")
    if k is not None and not 1 <= k <= max_usable:
        raise ValueError(
            f"k={k} must be in [1, {max_usable}]: {max_usable} is the fewest usable neighbours "
            "of any sample (rows of its group not from its own slide)"
        )
    base["max_usable_k"] = max_usable
    candidates = [k] if k is not None else [c for c in k_grid(k_grid_max) if c <= max_usable]
    return coded, base, reason, candidates


def nan_result(base: dict, k: int | None, reason: str) -> dict:
    """The RI result when RI is undefined: NaN values and the reason."""
    nan = float("nan")
    return {
        **base,
        "ri": nan,
        "ri_std": nan,
        "ri_boot_mean": nan,
        "support": nan,
        "k": k,
        "k_source": "given" if k is not None else None,
        "note": reason,
    }


def ri_from_neighbours(
    coded: CodedInputs,
    base: dict,
    index: np.ndarray,
    candidates: list[int],
    k_given: bool,
    n_bootstrap: int = 1000,
    seed: int = 0,
    curve_k: int | None = None,
) -> dict:
    """RI from precomputed neighbours (n, K), K >= max(candidates, curve_k); see `robustness_index`."""
    accuracy = knn_balanced_accuracy(coded.biology, index, candidates)
    # First maximum over increasing k, as PathoROB's np.argmax.
    k_used = max(accuracy, key=lambda c: (accuracy[c], -c))
    types = neighbour_types(coded.biology, coded.centre, index)
    curve = ri_curve(types.so, types.os)
    so_count = types.so[:, :k_used].sum(axis=1)
    os_count = types.os[:, :k_used].sum(axis=1)
    ri = float(curve[k_used - 1])
    boot_mean, boot_std = bootstrap_ri(so_count, os_count, n_bootstrap, seed)
    n_curve = curve_k or k_used
    informative = (so_count + os_count) > 0
    out = {
        **base,
        "ri": ri,
        "ri_std": boot_std,
        "ri_boot_mean": boot_mean,
        "k": int(k_used),
        "k_source": "given" if k_given else "balanced_accuracy",
        "balanced_accuracy": float(accuracy[k_used]),
        "balanced_accuracy_by_k": {int(c): float(a) for c, a in accuracy.items()},
        "counts": {
            name: int(getattr(types, name)[:, :k_used].sum()) for name in ("ss", "so", "os", "oo")
        },
        # croma's `support`: share of queries with at least one SO or OS neighbour.
        "support": float(informative.mean()),
        "ri_curve": [float(v) for v in curve[:n_curve]],
        "curve_k": list(range(1, n_curve + 1)),
        # Per-query SO / OS counts among the first k (arrays; dropped from JSON outputs).
        "per_query": {"so": so_count, "os": os_count},
        "note": None,
    }
    if not np.isfinite(ri):
        out["note"] = f"no SO or OS neighbour among the first {k_used}: RI is 0/0"
    return out


def robustness_index(
    embeddings: np.ndarray,
    biology: Sequence,
    centre: Sequence,
    slide: Sequence | None = None,
    k: int | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
    group: Sequence | None = None,
    curve_k: int | None = None,
    k_grid_max: int = PATHOROB_K_GRID_MAX,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device | None = None,
) -> dict:
    """Robustness Index (Kömen, de Jong et al., Nature Communications 2026; PathoROB).

    ``RI(k) = sum SO / sum (SO + OS)`` over each query's k nearest neighbours by cosine on
    L2-normalised embeddings, neighbours from the query's own slide dropped. SO: same
    biological class, other centre; OS: other class, same centre. 1 means neighbours follow
    biology, 0 that they follow the centre; 0.5 is a tie. Source: PathoROB
    ``pathorob/robustness_index/robustness_index_utils.py`` at commit ``01ac017``
    (`calculate_fractions`, `aggregate_stats`, `bootstrapped_robustness_index`,
    `filter_out_query_case_from_neighbors`, `evaluate_knn_accuracy`).

    k is PathoROB's per-dataset default when given (`PATHOROB_DEFAULT_K`: tcga 61, camelyon
    11, tolkach_esca 46), else the k of the grid 1, 3, 5, 7, 9, 11, 21, ... below `k_grid_max`
    that maximises the balanced accuracy of a kNN majority vote for the biological class
    (first maximum, as ``np.argmax``). PathoROB drops grid values above the smallest number
    of neighbours left after its slide filtering; here the limit is the smallest number of
    usable rows (group minus own slide), which is the same whenever its fetch was large
    enough.

    With `group` (e.g. PathoROB's TCGA 2x2 ``subset``) neighbours come only from the query's
    group and the counts are pooled over groups: PathoROB's paired evaluation.

    Args:
        embeddings: (n, d) embeddings (any scale; rows are L2-normalised).
        biology: (n,) biological class per sample.
        centre: (n,) confounder per sample: centre, scanner or site.
        slide: (n,) slide / case id; None treats every sample as its own slide.
        k: neighbours; None selects it by biological kNN balanced accuracy.
        n_bootstrap: query resamples for ``ri_std`` (fewer than 2: NaN std).
        seed: seed of the bootstrap.
        group: (n,) evaluation group; None: one group.
        curve_k: also return RI(1..curve_k) as ``ri_curve`` (None: up to k); capped at the
            fewest usable neighbours (``max_usable_k``).
        k_grid_max: upper end (exclusive) of the k grid searched when k is None.
        dtype: similarity dtype (``torch.float16`` is an option, checked against float32).
        device: torch device for the neighbour search.

    Returns:
        dict with ``ri``, ``ri_std``, ``ri_boot_mean``, ``k``, ``k_source`` ("given" or
        "balanced_accuracy"), ``balanced_accuracy`` (at k), ``counts`` (SS/SO/OS/OO at k),
        ``support`` (share of queries with an SO or OS neighbour; croma's name),
        ``ri_curve`` and ``curve_k`` (RI at 1..K), ``n``, ``n_biology``, ``n_centres``,
        ``note`` (why ``ri`` is NaN, else None) and ``warnings``.

    Raises:
        ValueError: bad input (see `code_inputs`), or k above some query's usable neighbours.
    """
    coded, base, reason, candidates = prepare(
        embeddings, biology, centre, slide, group, k, k_grid_max
    )
    if reason is not None:
        return nan_result(base, k, reason)
    curve_k = min(curve_k, base["max_usable_k"]) if curve_k else None
    nb = usable_neighbours(
        coded.embeddings,
        max(*candidates, curve_k or 0),
        coded.slide,
        coded.group,
        dtype=dtype,
        device=device,
    )
    return ri_from_neighbours(
        coded, base, nb.index, candidates, k is not None, n_bootstrap, seed, curve_k
    )

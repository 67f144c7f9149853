"""RI, MaRI and CRoMa from one neighbour search: the robustness metrics an encoder is compared by."""

from collections.abc import Sequence

import torch

from evaluation.robustness_index.index import nan_result, prepare, ri_from_neighbours
from evaluation.robustness_index.k_choice import PATHOROB_K_GRID_MAX
from evaluation.robustness_index.margin import CROMA_M, croma_summary
from evaluation.robustness_index.mari import mari_from_neighbours
from evaluation.robustness_index.neighbours import usable_neighbours


def robustness_metrics(
    embeddings,
    biology: Sequence,
    centre: Sequence,
    slide: Sequence | None = None,
    k: int | None = None,
    m: int = CROMA_M,
    group: Sequence | None = None,
    tau: float | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
    alpha: float = 0.10,
    curve_k: int | None = None,
    k_grid_max: int = PATHOROB_K_GRID_MAX,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device | None = None,
) -> dict:
    """``{"ri": ..., "mari": ..., "croma": ...}`` for one encoder's embeddings.

    One chunked similarity pass yields the k nearest usable neighbours (RI, MaRI) and the m
    nearest SO and OS neighbours over all usable rows (CRoMa); usable = another slide, same
    group. MaRI uses RI's k (given, or chosen by balanced accuracy, as croma does). With
    `group` (a paired 2x2 design) neighbours stay inside each group and CRoMa is the median
    of the per-group medians. Where a metric is undefined its value is NaN and its ``note``
    says why. See `robustness_index`, `mari_from_neighbours` and `croma_summary`.
    """
    coded, base, reason, candidates = prepare(
        embeddings, biology, centre, slide, group, k, k_grid_max
    )
    if reason is not None:
        ri = nan_result(base, k, reason)
        nan = float("nan")
        return {
            "ri": ri,
            "mari": {"mari": nan, "support": nan, "k": k, "note": reason},
            "croma": {"croma": nan, "ltm": nan, "f0": nan, "support": nan, "m": m, "note": reason},
        }
    curve_k = min(curve_k, base["max_usable_k"]) if curve_k else None
    nb = usable_neighbours(
        coded.embeddings,
        max(*candidates, curve_k or 0),
        coded.slide,
        coded.group,
        coded.biology,
        coded.centre,
        typed_m=m,
        dtype=dtype,
        device=device,
    )
    ri = ri_from_neighbours(
        coded, base, nb.index, candidates, k is not None, n_bootstrap, seed, curve_k
    )
    mari = mari_from_neighbours(
        coded.biology, coded.centre, nb.index, nb.distance, ri["k"], tau, alpha
    )
    croma = croma_summary(nb.so, nb.os, None if group is None else coded.group, alpha)
    return {"ri": ri, "mari": mari, "croma": croma}

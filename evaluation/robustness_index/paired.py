"""PathoROB's paired 2x2 evaluation (TCGA): neighbours searched within each subset, counts pooled."""

from collections.abc import Sequence

import numpy as np

from evaluation.robustness_index.index import robustness_index
from evaluation.robustness_index.k_choice import PATHOROB_DEFAULT_K


def subset_shapes(
    biology: Sequence, centre: Sequence, subset: Sequence
) -> dict[str, tuple[int, int]]:
    """(number of biological classes, number of centres) per subset."""
    b, c, s = (np.asarray(v, dtype=object).astype(str) for v in (biology, centre, subset))
    return {
        str(name): (int(np.unique(b[s == name]).size), int(np.unique(c[s == name]).size))
        for name in np.unique(s)
    }


def paired_robustness_index(
    embeddings: np.ndarray,
    biology: Sequence,
    centre: Sequence,
    slide: Sequence,
    subset: Sequence,
    k: int | None = PATHOROB_DEFAULT_K["tcga"],
    n_bootstrap: int = 1000,
    seed: int = 0,
    **kwargs,
) -> dict:
    """RI of PathoROB's paired TCGA design: each ``subset`` is 2 classes x 2 centres.

    PathoROB (`robustness_index_paired.py`, `select_optimal_k_value_pairs`) runs the kNN
    inside each subset only, stacks every subset's per-query SO/OS rows and computes
    ``RI(k) = sum SO / sum (SO + OS)`` over the pooled rows (`aggregate_stats`), with the
    bootstrap over pooled rows. That is `robustness_index` with ``group=subset``.

    Subsets that are not 2x2 are evaluated all the same, and named in ``warnings``.

    Args:
        subset: (n,) the 2x2 combination each sample belongs to (PathoROB's ``subset``).
        k: default PathoROB's tcga k (61); None selects it by balanced accuracy.
        kwargs: passed on to `robustness_index`.
    """
    shapes = subset_shapes(biology, centre, subset)
    out = robustness_index(
        embeddings,
        biology,
        centre,
        slide,
        k=k,
        n_bootstrap=n_bootstrap,
        seed=seed,
        group=subset,
        **kwargs,
    )
    odd = [f"{name} ({b}x{c})" for name, (b, c) in shapes.items() if (b, c) != (2, 2)]
    if odd:
        out["warnings"].append(f"subset(s) not 2 classes x 2 centres: {', '.join(odd)}")
    out["n_subsets"] = len(shapes)
    return out

"""PathoROB's clustering score: ARI of k-means clusters with biology minus ARI with the centre, over 2x2 sub-cohorts."""

from collections.abc import Sequence
from itertools import combinations, product

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, silhouette_score

from evaluation.robustness_index.inputs import code_inputs

# PathoROB commits this file follows: pathorob/clustering_score/clustering_score.py at
# e5add35 and pathorob/clustering_score/utils.py at 405f8af (bifold-pathomics/PathoROB).
PATHOROB_CLUSTERING_COMMITS = {
    "clustering_score.py": "e5add358436baebbae1671649a7dce5b0610f1c2",
    "utils.py": "405f8afd1a6b29ed86b711807ebf2f88813fbcd8",
}


def silhouette_k(z: np.ndarray, ks: Sequence[int], metric: str) -> np.ndarray:
    """Silhouette score per K of ``KMeans(K, random_state=1337, init="random", n_init=20)``
    (PathoROB `compute_silhouette_score_K`)."""
    out = np.zeros(len(ks))
    for i, k in enumerate(ks):
        labels = (
            KMeans(n_clusters=int(k), random_state=1337, init="random", n_init=20).fit(z).labels_
        )
        out[i] = silhouette_score(z, labels, metric=metric)
    return out


def clustering_score(
    embeddings: np.ndarray,
    biology: Sequence,
    centre: Sequence,
    k: int | None = None,
    min_k: int = 2,
    max_k: int = 30,
    n_trials: int = 50,
    metric: str = "cosine",
) -> dict:
    """Clustering score (Kömen, de Jong et al. 2026; PathoROB): ``ARI(biology) - ARI(centre)``.

    For every pair of classes x pair of centres whose four cells all hold samples (classes
    and centres in order of first appearance, ``itertools.combinations`` order), the rows of
    cells (b1, c1), (b1, c2), (b2, c1), (b2, c2) are L2-normalised (``metric="cosine"``) and
    clustered `n_trials` times by ``KMeans(K, random_state=1337 + t, n_init=5,
    init="random")``; each run scores ``ARI(biology, clusters) - ARI(centre, clusters)``
    (sklearn `adjusted_rand_score`). The score is the mean over all (combination, trial)
    runs, ``clustering_score_std`` their std (ddof=1, as pandas). 1: clusters follow
    biology only; negative: the centre wins.

    K, when not given, is the first argmax of the silhouette score over ``min_k..max_k`` on
    the *first* usable combination, then kept for all others: PathoROB's loop assigns the
    selected K to its ``K`` argument, so later combinations skip the search. Source:
    PathoROB ``pathorob/clustering_score/clustering_score.py`` (`compute`) and ``utils.py``
    (`compute_silhouette_score_K`, `compute_clustering_score`), commits in
    `PATHOROB_CLUSTERING_COMMITS`. One deviation: `max_k` is capped at the first
    combination's rows minus one, where PathoROB's k-means would raise.

    Returns:
        dict with ``clustering_score``, ``clustering_score_std``, ``ari_biology`` and
        ``ari_centre`` (means), ``k``, ``k_source``, ``silhouette`` (K -> score),
        ``n_combinations`` (all pairs x pairs, as PathoROB counts), ``n_evaluated``,
        ``n_trials``, ``note`` (why the score is NaN, else None) and ``warnings``.
    """
    coded = code_inputs(embeddings, biology, centre, None, None)
    bio = np.asarray(biology, dtype=object).astype(str)
    cen = np.asarray(centre, dtype=object).astype(str)
    nan = float("nan")
    out = {
        "clustering_score": nan,
        "clustering_score_std": nan,
        "ari_biology": nan,
        "ari_centre": nan,
        "k": k,
        "k_source": "given" if k is not None else None,
        "silhouette": {},
        "n_combinations": 0,
        "n_evaluated": 0,
        "n_trials": n_trials,
        "warnings": [],
        "note": None,
    }
    bio_options, cen_options = _unique_in_order(bio), _unique_in_order(cen)
    if bio_options.size < 2:
        out["note"] = f"only one biological class ({bio_options[0]}): no 2x2 combination"
        return out
    if cen_options.size < 2:
        out["note"] = f"only one centre ({cen_options[0]}): no 2x2 combination"
        return out
    if n_trials < 1:
        out["note"] = f"skipped: {n_trials} clustering trials"
        return out
    if k is not None and k < 2:
        raise ValueError(f"k={k}: the number of clusters must be >= 2")
    cells = {}
    for row, key in enumerate(zip(bio.tolist(), cen.tolist(), strict=True)):
        cells.setdefault(key, []).append(row)
    z_all = np.asarray(coded.embeddings)
    if metric == "cosine":
        z_all = z_all / np.sqrt((z_all**2).sum(axis=1))[:, None]
    combos = list(product(combinations(bio_options, 2), combinations(cen_options, 2)))
    out["n_combinations"] = len(combos)
    runs = []
    for (b1, b2), (c1, c2) in combos:
        keys = [(b1, c1), (b1, c2), (b2, c1), (b2, c2)]
        if not all(key in cells for key in keys):
            continue
        rows = [r for key in keys for r in cells[key]]
        z, yb, yc = z_all[rows], bio[rows], cen[rows]
        if k is None:
            ks = list(range(min_k, min(max_k, len(rows) - 1) + 1))
            if not ks:
                out["note"] = f"{len(rows)} rows in {b1}/{b2} x {c1}/{c2}: too few to cluster"
                return out
            scores = silhouette_k(z, ks, metric)
            k = int(ks[int(np.argmax(scores))])
            out.update(
                k=k,
                k_source="silhouette",
                silhouette=dict(zip(ks, map(float, scores), strict=True)),
            )
        if k >= len(rows):
            out["warnings"].append(f"{b1}/{b2} x {c1}/{c2} skipped: {len(rows)} rows for K={k}")
            continue
        for t in range(n_trials):
            labels = (
                KMeans(n_clusters=k, random_state=1337 + t, n_init=5, init="random").fit(z).labels_
            )
            a_bio, a_cen = adjusted_rand_score(yb, labels), adjusted_rand_score(yc, labels)
            runs.append((a_bio, a_cen, a_bio - a_cen))
        out["n_evaluated"] += 1
    if not runs:
        out["note"] = out["note"] or "no 2 classes x 2 centres combination has all four cells"
        return out
    arr = np.asarray(runs)
    out.update(
        clustering_score=float(arr[:, 2].mean()),
        clustering_score_std=float(arr[:, 2].std(ddof=1)) if len(arr) > 1 else nan,
        ari_biology=float(arr[:, 0].mean()),
        ari_centre=float(arr[:, 1].mean()),
    )
    return out


def _unique_in_order(values: np.ndarray) -> np.ndarray:
    """The distinct values in order of first appearance (``pandas.unique``'s order, which
    PathoROB's combination loop follows), without pandas."""
    values = np.asarray(values)
    _, first = np.unique(values, return_index=True)
    return values[np.sort(first)]

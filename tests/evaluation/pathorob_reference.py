"""PathoROB's Robustness Index restated operation by operation, as a test oracle.

Source: https://github.com/bifold-pathomics/PathoROB, commit
01ac01700ed501f816741f29c98ba725263e3073, files pathorob/robustness_index/
robustness_index_utils.py, robustness_index.py and robustness_index_paired.py. Written
anew from reading those functions (named in each docstring), keeping their data flow:
sklearn neighbours on L2-normalised rows, slide filtering of over-fetched neighbours,
per-row truncation to the shortest filtered list, per-position type matrices, cumulative
fractions, ``np.random.choice`` bootstrap. Pandas frames are replaced by arrays.
"""

import numpy as np
from scipy.stats import mode
from sklearn.metrics import balanced_accuracy_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import LabelEncoder, Normalizer

TCGA_PAIRED_MAX_K = 1200  # get_max_k("tcga", paired_evaluation=True)


def ref_k_values(max_k: int) -> np.ndarray:
    """`get_k_values` without opt_k."""
    return np.array([1, 3, 5, 7, 9, *np.arange(11, max_k, 10)])


def ref_knn_filtered(
    x: np.ndarray, y: np.ndarray, slide: np.ndarray, n_neighbors: int
) -> np.ndarray:
    """`evaluate_knn_accuracy` (first call) + `filter_out_query_case_from_neighbors`."""
    knn = KNeighborsClassifier(n_neighbors=n_neighbors)
    knn.fit(x, y)
    _, idx = knn.kneighbors(x, return_distance=True)
    rows = [[j for j in idx[i] if slide[j] != slide[i]] for i in range(len(x))]
    shortest = min(len(r) for r in rows)
    return np.array([r[:shortest] for r in rows])


def ref_balanced_accuracy(y: np.ndarray, idx: np.ndarray, k: int) -> float:
    """`evaluate_knn_accuracy` on cached neighbours."""
    pred = mode(y[idx[:, :k]], axis=1).mode.flatten()
    return float(balanced_accuracy_score(y, pred))


def ref_type_matrices(bio: np.ndarray, conf: np.ndarray, idx: np.ndarray):
    """`has_same_class` for both fields, then `calculate_fractions` (SS, SO, OS, OO)."""
    same_bio = np.zeros_like(idx)
    same_conf = np.zeros_like(idx)
    for i in range(idx.shape[0]):
        same_bio[i, :] = bio[idx[i, :]] == bio[i]
        same_conf[i, :] = conf[idx[i, :]] == conf[i]
    ss = same_bio & same_conf
    so = same_bio & (1 - same_conf)
    os_ = (1 - same_bio) & same_conf
    oo = (1 - same_bio) & (1 - same_conf)
    return ss, so, os_, oo


def ref_aggregate(mats: list[tuple], n_bootstrap: int | None, seed: int) -> dict:
    """`aggregate_stats` (with `restrict_to_same_nr_cols`, `get_cumulative_sum`) and
    `bootstrapped_robustness_index` after ``np.random.seed(seed)``."""
    width = min(m[0].shape[1] for m in mats)
    ss, so, os_, oo = (np.vstack([m[t][:, :width] for m in mats]) for t in range(4))
    cums = [np.cumsum(m, axis=1) for m in (ss, so, os_, oo)]
    col = [c.sum(axis=0) for c in cums]
    total = col[0] + col[1] + col[2] + col[3]
    so_norm, os_norm = col[1] / total, col[2] / total
    out = {"robustness_index": so_norm / (so_norm + os_norm), "max_k": width}
    if n_bootstrap:
        np.random.seed(seed)
        rows = np.arange(so.shape[0])
        boot = np.empty((n_bootstrap, width))
        for b in range(n_bootstrap):
            sample = np.random.choice(rows, size=so.shape[0], replace=True)
            nr_so = np.sum(cums[1][sample, :], axis=0)
            nr_os = np.sum(cums[2][sample, :], axis=0)
            boot[b, :] = nr_so / (nr_so + nr_os)
        out["robustness_index-mean"] = np.mean(boot, axis=0)
        out["robustness_index-std"] = np.std(boot, axis=0, ddof=1)
    return out


def _encode(values) -> np.ndarray:
    return LabelEncoder().fit_transform(np.asarray(values).astype(str))


def ref_robustness_index(x, bio, conf, slide, opt_k: int, n_bootstrap: int = 0, seed: int = 0):
    """`compute(k_opt_param=opt_k)` unpaired: fetch opt_k + largest slide, RI at opt_k."""
    x = Normalizer(norm="l2").fit_transform(x)
    y, conf_codes = _encode(bio), _encode(conf)
    margin = int(np.max(np.unique(slide, return_counts=True)[1]))
    idx = ref_knn_filtered(x, y, np.asarray(slide), opt_k + margin)
    stats = ref_aggregate([ref_type_matrices(y, conf_codes, idx)], n_bootstrap, seed)
    return stats, ref_balanced_accuracy(y, idx, opt_k)


def ref_robustness_index_k_opt(x, bio, conf, slide, max_k: int = 600):
    """`select_optimal_k_value` with opt_k = -1: the grid k of best balanced accuracy."""
    x = Normalizer(norm="l2").fit_transform(x)
    y, conf_codes = _encode(bio), _encode(conf)
    k_values = [k for k in ref_k_values(max_k) if k <= len(x)]
    idx = ref_knn_filtered(x, y, np.asarray(slide), k_values[-1])
    k_values = [k for k in k_values if k <= idx.shape[1]]
    acc = [ref_balanced_accuracy(y, idx, k) for k in k_values]
    k_opt = int(k_values[int(np.argmax(acc))])
    stats = ref_aggregate([ref_type_matrices(y, conf_codes, idx)], None, 0)
    return k_opt, float(stats["robustness_index"][k_opt - 1]), dict(zip(k_values, acc, strict=True))


def ref_paired_robustness_index(
    x, bio, conf, slide, subset, opt_k: int, n_bootstrap: int, seed: int
):
    """`select_optimal_k_value_pairs`: per subset, fetch the largest grid k (paired max_k
    1200, as its positional call of `get_k_values` gives) within the subset, filter, pool."""
    x = Normalizer(norm="l2").fit_transform(x)
    bio, conf, slide, subset = (np.asarray(v).astype(str) for v in (bio, conf, slide, subset))
    mats = []
    for name in np.unique(subset):
        sel = subset == name
        y, conf_codes = _encode(bio[sel]), _encode(conf[sel])
        k_values = [k for k in ref_k_values(TCGA_PAIRED_MAX_K) if k <= sel.sum()]
        idx = ref_knn_filtered(x[sel], y, slide[sel], k_values[-1])
        mats.append(ref_type_matrices(y, conf_codes, idx))
    stats = ref_aggregate(mats, n_bootstrap, seed)
    return stats

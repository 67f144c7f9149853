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


# --- APD and clustering score ----------------------------------------------------------
# Source: https://github.com/bifold-pathomics/PathoROB
#   pathorob/apd/apd.py (`compute`) and pathorob/apd/utils.py (`get_patches_map_to_split`,
#   `compute_apd`) at commit 5472795d9433c12d64a7380ad19e4e78c2395566,
#   https://github.com/bifold-pathomics/PathoROB/blob/5472795d9433c12d64a7380ad19e4e78c2395566/pathorob/apd/apd.py
#   pathorob/apd/train_model.py at commit 405f8afd1a6b29ed86b711807ebf2f88813fbcd8;
#   pathorob/clustering_score/clustering_score.py (`compute`) at commit
#   e5add358436baebbae1671649a7dce5b0610f1c2 and pathorob/clustering_score/utils.py at
#   commit 405f8afd1a6b29ed86b711807ebf2f88813fbcd8,
#   https://github.com/bifold-pathomics/PathoROB/blob/e5add358436baebbae1671649a7dce5b0610f1c2/pathorob/clustering_score/clustering_score.py
# Restated from reading them, keeping their data flow: nested lists of
# (patch, centre, class, slide) tuples per cell, the global `random` module, the C grid
# via `map`, pandas for the ARI table. Metadata frames are replaced by arrays.


def ref_split_map(dataset: str, split: int, n: int):
    """`get_patches_map_to_split`."""
    if dataset == "camelyon":
        a = [(0, 0, (7 - split) * n), (0, 1, (7 + split) * n)]
        b = [(1, 0, (7 + split) * n), (1, 1, (7 - split) * n)]
        return sorted(a + b), 14
    if dataset == "tcga":
        diag = [(i, j, (split + 2) * n) for i in range(4) for j in range(4) if i == j]
        inv = [
            (i, j, (1 if split % 2 == 1 else (2 if split < 3 else 0)) * n)
            for i in range(4)
            for j in range(4)
            if i + j == 3
        ]
        rest = [
            (i, j, (2 if split < 2 else (1 if split < 5 else 0)) * n)
            for i in range(4)
            for j in range(4)
            if i != j and i + j != 3
        ]
        return sorted(diag + inv + rest), 8
    if dataset == "tolkach_esca":
        a = [(0, j, (3 - split) * n) for j in range(3)] + [
            (0, j, (3 + split) * n) for j in range(3, 6)
        ]
        b = [(1, j, (3 + split) * n) for j in range(3)] + [
            (1, j, (3 - split) * n) for j in range(3, 6)
        ]
        return sorted(a + b), 6
    raise ValueError(dataset)


def ref_fit_and_evaluate(args):
    """`fit_and_evaluate`."""
    from sklearn.linear_model import LogisticRegression

    c, train_x, train_y, val_x, val_y, eval_func = args
    model = LogisticRegression(C=c, random_state=0)
    model.fit(train_x, train_y)
    return c, eval_func(val_y, model.predict(val_x))


def ref_train_logistic_regression(train_x, train_y, val_x, val_y, test_xs, test_ys):
    """`train_logistic_regression` with balanced accuracy."""
    from sklearn.linear_model import LogisticRegression

    cs = 10 ** np.linspace(-8, 4, 15)
    results = list(
        map(
            ref_fit_and_evaluate,
            [(c, train_x, train_y, val_x, val_y, balanced_accuracy_score) for c in cs],
        )
    )
    best_c, _ = max(results, key=lambda x: x[1])
    final = LogisticRegression(C=best_c)
    final.fit(train_x, train_y)
    return [
        balanced_accuracy_score(y, final.predict(x)) for x, y in zip(test_xs, test_ys, strict=True)
    ]


def ref_compute_apd(accuracies) -> np.ndarray:
    """`compute_apd`: per-replicate scores."""
    scores = np.asarray(accuracies)
    return (scores[1:] / scores[0]).mean(axis=0) - 1


def ref_apd_compute(features, dataset: str, num_splits: int, n_per_slide: int, iterations: int):
    """`compute` for camelyon / tcga (no tolkach case splits, no OOD set).

    `features[i][j]` is the list of (patch, i, j, slide) tuples of centre i, class j.
    Returns (per-split lists of in-domain accuracies, APD).
    """
    import random

    features = [[list(cell) for cell in row] for row in features]
    random.seed(1000)
    seeds = random.sample(range(0, 10000), iterations)
    acc = [[] for _ in range(num_splits)]
    for seed in seeds:
        random.seed(seed)
        for i in range(len(features)):
            for j in range(len(features[i])):
                chunks = [
                    features[i][j][k : k + n_per_slide]
                    for k in range(0, len(features[i][j]), n_per_slide)
                ]
                random.shuffle(chunks)
                features[i][j] = [item for s in chunks for item in s]
        for split in range(num_splits):
            split_map, max_train = ref_split_map(dataset, split, n_per_slide)
            train = [features[i][j][:n] for i, j, n in split_map]
            train = [t for cell in train for t in cell]
            val = [features[i][j][n : n + int(n / max_train)] for i, j, n in split_map]
            val = [t for cell in val for t in cell]
            idx_test = (max_train + 1) * n_per_slide
            test = [
                features[a][b][idx_test:]
                for a in range(len(features))
                for b in range(len(features[0]))
            ]
            test = [t for cell in test for t in cell]
            train_x, train_y = zip(*[(p, b) for p, _, b, _ in train], strict=True)
            val_x, val_y = zip(*[(p, b) for p, _, b, _ in val], strict=True)
            test_x, test_y = zip(*[(p, b) for p, _, b, _ in test], strict=True)
            (score,) = ref_train_logistic_regression(
                train_x, train_y, val_x, val_y, [test_x], [test_y]
            )
            acc[split].append(score)
    return acc, float(np.mean(ref_compute_apd(acc)))


def ref_clustering_compute(z, bio, mc, K=None, minK=2, maxK=30, metric="cosine", num_trials=50):
    """Clustering score `compute` on arrays (metadata order = row order)."""
    from itertools import combinations, product

    import pandas as pd
    from sklearn import metrics
    from sklearn.cluster import KMeans

    bio, mc = np.asarray(bio), np.asarray(mc)
    bio_options, mc_options = pd.unique(bio), pd.unique(mc)
    combis, per_combi = set(), {}
    for b in bio_options:
        for c in mc_options:
            sel = np.flatnonzero((bio == b) & (mc == c))
            if len(sel) > 0:
                per_combi[f"{b}-{c}"] = sel
                combis.add(f"{b}-{c}")
    all_combinations = list(product(combinations(bio_options, r=2), combinations(mc_options, r=2)))
    all_aris = pd.DataFrame()
    for (bio1, bio2), (mc1, mc2) in all_combinations:
        current = [f"{bio1}-{mc1}", f"{bio1}-{mc2}", f"{bio2}-{mc1}", f"{bio2}-{mc2}"]
        if not all(cc in combis for cc in current):
            continue
        Z, bio_labels, mc_labels = [], [], []
        for cc in current:
            Z.extend(z[per_combi[cc]])
            bio_labels.extend(bio[per_combi[cc]].tolist())
            mc_labels.extend(mc[per_combi[cc]].tolist())
        Z = np.array(Z)
        bio_labels, mc_labels = np.array(bio_labels), np.array(mc_labels)
        Z_norm = Z / np.sqrt((Z**2).sum(axis=1))[:, None] if metric == "cosine" else Z
        if K is None:
            Ks = np.linspace(minK, maxK, maxK - minK + 1, dtype=int)
            SS = np.zeros(len(Ks))
            for i, k in enumerate(Ks):
                km = KMeans(n_clusters=k, random_state=1337, init="random", n_init=20).fit(Z_norm)
                SS[i] = metrics.silhouette_score(Z_norm, km.labels_, metric=metric)
            K = Ks[np.argmax(SS)]
        aris = np.zeros([num_trials, 3])
        for t in range(num_trials):
            km = KMeans(n_clusters=K, random_state=1337 + t, n_init=5, init="random").fit(Z_norm)
            a_bio = metrics.adjusted_rand_score(bio_labels, km.labels_)
            a_mc = metrics.adjusted_rand_score(mc_labels, km.labels_)
            aris[t, :] = [a_bio, a_mc, a_bio - a_mc]
        frame = pd.DataFrame(aris, columns=["ari_bio", "ari_mc", "clustering_score"])
        all_aris = pd.concat([all_aris, frame], axis=0, ignore_index=True)
    return {
        "clustering_score_mean": all_aris["clustering_score"].mean(),
        "clustering_score_std": all_aris["clustering_score"].std(),
        "K": int(K),
        "num_combinations": len(all_combinations),
    }


# --- APD with the out-of-domain test set and tolkach_esca's case-level splits ------------
# Source: https://github.com/bifold-pathomics/PathoROB/blob/5472795d9433c12d64a7380ad19e4e78c2395566/pathorob/apd/apd.py
# (`compute`: the `data_test_ood` set scored by the same probe as the in-domain tail, the
# tolkach_esca branch that draws `random_train_test_split` and moves the test cases to the
# end of each cell, `apds = {'apd_id': ..., 'apd_ood': ...}`), and `load_data` in
# pathorob/apd/utils.py at the same commit (OOD rows = metadata ``subset == "OOD"``; the
# feasible splits are pathorob/resources/tolkach_splits.json). Restated with the same
# statements in the same order; only the loading is replaced by arguments.


def ref_apd_compute_ood(
    features,
    data_test_ood,
    dataset: str,
    num_splits: int,
    num_patches_per_slide: int,
    iterations: int,
    medical_centers=None,
    feasible_splits=None,
):
    """`compute` with OOD: returns (ID accuracies, OOD accuracies, apd_id, apd_ood).

    `features[i][j]`: (patch, i, j, slide_id) tuples of in-domain centre i, class j;
    `data_test_ood`: (patch, centre, class, slide_id) tuples of the OOD centres.
    """
    import random

    features = [[list(cell) for cell in row] for row in features]
    random.seed(1000)
    seeds = random.sample(range(0, 10000), iterations)
    id_test_accuracies = [[] for _ in range(num_splits)]
    ood_test_accuracies = [[] for _ in range(num_splits)]
    for seed in seeds:
        random.seed(seed)
        if dataset == "tolkach_esca":
            random_train_test_split = (
                random.randint(0, len(feasible_splits["train"][medical_centers[0]]) - 1),
                random.randint(0, len(feasible_splits["train"][medical_centers[1]]) - 1),
            )
        for i, center in enumerate(medical_centers or range(len(features))):
            if dataset == "tolkach_esca":
                test_cases = feasible_splits["test"][center][random_train_test_split[i]]
            for j in range(len(features[i])):
                chunks = [
                    features[i][j][k : k + num_patches_per_slide]
                    for k in range(0, len(features[i][j]), num_patches_per_slide)
                ]
                random.shuffle(chunks)
                if dataset == "tolkach_esca":
                    case_order = [chunks[k][0][3] for k in range(len(chunks))]
                    for test_case in list(set(test_cases) & set(case_order)):
                        chunks.append(
                            chunks.pop(
                                [chunks[k][0][3] for k in range(len(chunks))].index(test_case)
                            )
                        )
                features[i][j] = [item for slide in chunks for item in slide]
        for split in range(num_splits):
            split_map, max_train = ref_split_map(dataset, split, num_patches_per_slide)
            train = [features[i][j][:n] for i, j, n in split_map]
            train = [t for cell in train for t in cell]
            val = [features[i][j][n : n + int(n / max_train)] for i, j, n in split_map]
            val = [t for cell in val for t in cell]
            idx_test = (max_train + 1) * num_patches_per_slide
            test_id = [
                features[i][j][idx_test:]
                for i, j in [(a, b) for a in range(len(features)) for b in range(len(features[0]))]
            ]
            test_id = [t for cell in test_id for t in cell]
            train_x, train_y = zip(*[(p, b) for p, _, b, _ in train], strict=True)
            val_x, val_y = zip(*[(p, b) for p, _, b, _ in val], strict=True)
            test_x_id, test_y_id = zip(*[(p, b) for p, _, b, _ in test_id], strict=True)
            test_x_ood, test_y_ood = zip(*[(p, b) for p, _, b, _ in data_test_ood], strict=True)
            scores = ref_train_logistic_regression(
                train_x, train_y, val_x, val_y, [test_x_id, test_x_ood], [test_y_id, test_y_ood]
            )
            id_test_accuracies[split].append(scores[0])
            ood_test_accuracies[split].append(scores[1])
    return (
        id_test_accuracies,
        ood_test_accuracies,
        float(np.mean(ref_compute_apd(id_test_accuracies))),
        float(np.mean(ref_compute_apd(ood_test_accuracies))),
    )

"""HEST-Benchmark regression: StandardScaler -> PCA -> Ridge, Pearson r per target."""

import warnings

import numpy as np
from scipy.stats import ConstantInputWarning, pearsonr
from sklearn.decomposition import PCA
from sklearn.linear_model import Ridge
from sklearn.preprocessing import StandardScaler


def hest_fold(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    n_components: int = 256,
    seed: int = 0,
) -> dict[str, object]:
    """One fold of mahmoodlab/HEST's ridge probe (``src/hest/bench/benchmark.py`` + ``trainer.py``).

    StandardScaler and PCA(n_components, random_state=seed) are fitted on train; n_components is
    capped by min(n_train, dim). Ridge(alpha = 100 / (n_components * n_targets),
    fit_intercept=False, solver="lsqr", max_iter=1000) as ``train_test_reg``; Pearson r per
    target on the test fold (NaN for a constant target/prediction, then left out of the mean).

    Returns:
        ``pearson_per_target`` (list), ``pearson_mean`` over targets, ``n_components``, ``alpha``.
    """
    if x_train.shape[0] != y_train.shape[0] or x_test.shape[0] != y_test.shape[0]:
        raise ValueError("embeddings and targets must have the same number of rows in each split")
    if y_train.ndim != 2 or y_train.shape[1] != y_test.shape[1]:
        raise ValueError(
            f"targets must be (n, n_targets) with the same targets in train and test, got {y_train.shape} / {y_test.shape}"
        )
    k = int(min(n_components, x_train.shape[0], x_train.shape[1]))
    scaler = StandardScaler().fit(x_train)
    pca = PCA(n_components=k, random_state=seed).fit(scaler.transform(x_train))
    z_train, z_test = (
        pca.transform(scaler.transform(x_train)),
        pca.transform(scaler.transform(x_test)),
    )
    alpha = 100.0 / (k * y_train.shape[1])
    reg = Ridge(alpha=alpha, fit_intercept=False, solver="lsqr", max_iter=1000, random_state=seed)
    pred = reg.fit(z_train, y_train).predict(z_test)
    rs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConstantInputWarning)
        for t in range(y_test.shape[1]):
            rs.append(float(pearsonr(y_test[:, t], pred[:, t]).statistic))
    valid = [r for r in rs if np.isfinite(r)]
    return {
        "pearson_per_target": rs,
        "pearson_mean": float(np.mean(valid)) if valid else float("nan"),
        "n_components": k,
        "alpha": alpha,
        "n_train": int(x_train.shape[0]),
        "n_test": int(x_test.shape[0]),
    }


def summarise_folds(folds: list[dict[str, object]], targets: list[str]) -> dict[str, object]:
    """Mean over targets per fold, then mean/std (population, as HEST's merge_fold_results) over folds."""
    means = np.array([float(f["pearson_mean"]) for f in folds])
    per_target = np.array([f["pearson_per_target"] for f in folds], dtype=np.float64)
    return {
        "pearson_mean": float(np.nanmean(means)),
        "pearson_std": float(np.nanstd(means)),
        "mean_per_fold": means.tolist(),
        "pearson_per_target": dict(
            zip(targets, np.nanmean(per_target, axis=0).tolist(), strict=True)
        ),
        "folds": folds,
    }

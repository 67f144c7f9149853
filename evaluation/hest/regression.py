"""HEST-Benchmark regression: StandardScaler -> PCA -> Ridge, Pearson r per target."""

import warnings

import numpy as np
from scipy.stats import ConstantInputWarning, pearsonr
from sklearn.decomposition import PCA
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

HEST_SEED = 1
"""HEST-Benchmark's default ``--seed`` (PCA and ridge ``random_state``)."""

CONSTANT_GENE_POLICIES = ("nan", "drop")
"""nan: a gene with undefined Pearson r (constant in the test fold) makes the fold mean NaN, as
HEST's ``np.mean``; drop: such genes are left out of the mean."""


def hest_fold(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    n_components: int = 256,
    seed: int = HEST_SEED,
    constant_gene: str = "nan",
) -> dict[str, object]:
    """One fold of HEST-Benchmark's ridge probe, numerically as HEST computes it.

    Reference: mahmoodlab/HEST at commit 87e586fb550e34a908f66907c425e436c3d1c6e9,
    ``src/hest/bench/benchmark.py`` (``predict_single_split``) and ``src/hest/bench/trainer.py``
    (``train_test_reg``), https://github.com/mahmoodlab/HEST/tree/87e586fb550e34a908f66907c425e436c3d1c6e9/src/hest/bench.
    A ``Pipeline(StandardScaler, PCA(n_components, random_state=seed))`` is fitted with
    ``fit_transform`` on train (not ``fit`` then ``transform``: the two differ under sklearn's
    randomized solver). HEST wraps the PCA outputs in ``torch.Tensor`` (float32), which sklearn
    then converts to float64: the ridge sees float32-rounded values in float64, as here.
    Ridge(alpha = 100 / (n_components * n_targets), fit_intercept=False, solver="lsqr",
    max_iter=1000, random_state=seed); Pearson r per target on the test fold. n_components is
    capped by min(n_train, dim), where HEST would raise.

    Args:
        x_train, y_train, x_test, y_test: embeddings (n, d) and targets (n, n_targets), rows in
            HEST's order (split-file order, then barcode order) since the solver is randomized.
        n_components: PCA components before the cap.
        seed: PCA and ridge random_state (HEST's default is 1).
        constant_gene: ``"nan"`` (HEST) or ``"drop"``; see ``CONSTANT_GENE_POLICIES``.

    Returns:
        ``pearson_per_target`` (list), ``pearson_mean`` over targets, ``n_components``, ``alpha``,
        ``n_undefined`` (targets with NaN r), ``constant_gene``, ``n_train``, ``n_test``.
    """
    if constant_gene not in CONSTANT_GENE_POLICIES:
        raise ValueError(
            f"constant_gene must be one of {CONSTANT_GENE_POLICIES}, got {constant_gene!r}"
        )
    if x_train.shape[0] != y_train.shape[0] or x_test.shape[0] != y_test.shape[0]:
        raise ValueError("embeddings and targets must have the same number of rows in each split")
    if y_train.ndim != 2 or y_train.shape[1] != y_test.shape[1]:
        raise ValueError(
            f"targets must be (n, n_targets) with the same targets in train and test, got {y_train.shape} / {y_test.shape}"
        )
    k = int(min(n_components, x_train.shape[0], x_train.shape[1]))
    pipe = Pipeline([("scaler", StandardScaler()), ("PCA", PCA(n_components=k, random_state=seed))])
    # float32 rounding then float64: HEST's torch.Tensor wrap, then sklearn's conversion
    z_train = pipe.fit_transform(x_train).astype(np.float32).astype(np.float64)
    z_test = pipe.transform(x_test).astype(np.float32).astype(np.float64)
    alpha = 100.0 / (k * y_train.shape[1])
    reg = Ridge(alpha=alpha, fit_intercept=False, solver="lsqr", max_iter=1000, random_state=seed)
    pred = reg.fit(z_train, y_train).predict(z_test)
    rs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConstantInputWarning)
        for t in range(y_test.shape[1]):
            rs.append(float(pearsonr(y_test[:, t], pred[:, t]).statistic))
    valid = [r for r in rs if np.isfinite(r)]
    if constant_gene == "nan":
        mean = float(np.mean(rs))
    else:
        mean = float(np.mean(valid)) if valid else float("nan")
    return {
        "pearson_per_target": rs,
        "pearson_mean": mean,
        "n_components": k,
        "alpha": alpha,
        "n_undefined": len(rs) - len(valid),
        "constant_gene": constant_gene,
        "n_train": int(x_train.shape[0]),
        "n_test": int(x_test.shape[0]),
    }


def summarise_folds(folds: list[dict[str, object]], targets: list[str]) -> dict[str, object]:
    """Mean over targets per fold, then mean/std (population, as HEST's merge_fold_results) over folds.

    Under ``constant_gene="nan"`` (HEST) a NaN anywhere propagates, as HEST's ``np.mean``; under
    ``"drop"`` NaNs are left out.
    """
    policy = str(folds[0].get("constant_gene", "nan")) if folds else "nan"
    mean, std = (np.mean, np.std) if policy == "nan" else (np.nanmean, np.nanstd)
    means = np.array([float(f["pearson_mean"]) for f in folds])
    per_target = np.array([f["pearson_per_target"] for f in folds], dtype=np.float64)
    with warnings.catch_warnings():  # an all-NaN gene under "drop" stays NaN, without the warning
        warnings.filterwarnings("ignore", "Mean of empty slice", RuntimeWarning)
        warnings.filterwarnings("ignore", "Degrees of freedom", RuntimeWarning)
        mean_fold, std_fold = float(mean(means)), float(std(means))
        mean_target = mean(per_target, axis=0).tolist()
    return {
        "pearson_mean": mean_fold,
        "pearson_std": std_fold,
        "constant_gene": policy,
        "mean_per_fold": means.tolist(),
        "pearson_per_target": dict(zip(targets, mean_target, strict=True)),
        "folds": folds,
    }

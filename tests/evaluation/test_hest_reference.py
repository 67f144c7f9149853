"""HEST probe numbers against a restatement of HEST-Benchmark's own code (rows, seed, PCA, dtypes)."""

import warnings

import numpy as np
import pytest
import torch
from scipy.stats import ConstantInputWarning, pearsonr
from sklearn.decomposition import PCA
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from evaluation.hest import HestTable, run_hest

HEST = (
    "https://github.com/mahmoodlab/HEST/tree/87e586fb550e34a908f66907c425e436c3d1c6e9/"
    "src/hest/bench"
)


def hest_oracle(table: HestTable, train_ids: list[str], test_ids: list[str], seed: int = 1):
    """``predict_single_split`` (after loading) + ``train_test_reg`` at HEST, restated.

    Rows: each split file's samples in file order, concatenated; Pipeline(StandardScaler, PCA(256,
    random_state=seed)).fit_transform on train; outputs wrapped in ``torch.Tensor`` and given to
    sklearn's Ridge(lsqr, alpha = 100 / (dims * genes), no intercept, max_iter 1000); per-gene
    ``pearsonr``, mean with ``np.mean`` (a NaN propagates).
    """

    def rows(ids):
        return np.concatenate([np.flatnonzero(table.sample_ids == s) for s in ids])

    tr, te = rows(train_ids), rows(test_ids)
    pipe = Pipeline(
        [("scaler", StandardScaler()), ("PCA", PCA(n_components=256, random_state=seed))]
    )
    x_train, x_test = (
        torch.Tensor(pipe.fit_transform(table.x[tr])),
        torch.Tensor(pipe.transform(table.x[te])),
    )
    alpha = 100 / (x_train.shape[1] * table.y.shape[1])
    reg = Ridge(solver="lsqr", alpha=alpha, random_state=seed, fit_intercept=False, max_iter=1000)
    reg.fit(x_train, table.y[tr])
    preds = reg.predict(x_test)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConstantInputWarning)
        rs = [pearsonr(table.y[te][:, t], preds[:, t])[0] for t in range(table.y.shape[1])]
    return rs, float(np.mean(rs))


def _table(constant_gene_in_test: bool = False) -> HestTable:
    """Four samples, fewer training rows than dims so the randomized PCA depends on row order."""
    rng = np.random.default_rng(0)
    ids = np.repeat(["S0", "S1", "S2", "S3"], [150, 150, 150, 100])
    x = rng.normal(size=(len(ids), 600)).astype(np.float32)
    y = np.log1p(np.abs(x[:, :6] @ rng.normal(size=(6, 6)) + rng.normal(size=(len(ids), 6))))
    if constant_gene_in_test:
        y[ids == "S0", 2] = 0.0
    return HestTable(x, y, ids, [f"g{i}" for i in range(6)])


def test_default_reproduces_hest_exactly() -> None:
    table = _table()
    train_ids, test_ids = ["S3", "S1", "S2"], ["S0"]  # split-file order, not sorted
    rs, mean = hest_oracle(table, train_ids, test_ids)
    got = run_hest(table, [(train_ids, test_ids)], progress=False)
    np.testing.assert_allclose(got["folds"][0]["pearson_per_target"], rs, rtol=0, atol=1e-12)
    assert got["pearson_mean"] == pytest.approx(mean, abs=1e-12)
    # the old behaviour (seed 0, rows sorted by id) is measurably different
    old, _ = hest_oracle(table, sorted(train_ids), test_ids, seed=0)
    assert np.max(np.abs(np.asarray(old) - rs)) > 1e-4


def test_constant_gene_policies() -> None:
    table = _table(constant_gene_in_test=True)
    folds = [(["S1", "S2", "S3"], ["S0"])]
    rs, mean = hest_oracle(table, *folds[0])
    hest = run_hest(table, folds, progress=False)
    assert np.isnan(mean) and np.isnan(hest["pearson_mean"]) and hest["constant_gene"] == "nan"
    dropped = run_hest(table, folds, progress=False, constant_gene="drop")
    assert dropped["pearson_mean"] == pytest.approx(np.nanmean(rs), abs=1e-12)
    assert dropped["folds"][0]["n_undefined"] == 1 and dropped["constant_gene"] == "drop"

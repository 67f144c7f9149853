"""Known answers and independent re-computations for vitkd.metrics."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import Ridge
from sklearn.metrics import r2_score

from vitkd.metrics import knn_agreement, linear_cka, ridge_r2


def _hsic_cka(x: np.ndarray, y: np.ndarray) -> float:
    """CKA through n x n centred Gram matrices, the paper's HSIC form."""
    n = x.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    k, l_ = h @ x @ x.T @ h, h @ y @ y.T @ h
    return float(np.sum(k * l_) / np.sqrt(np.sum(k * k) * np.sum(l_ * l_)))


def test_cka_known_answers() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 32))
    q, _ = np.linalg.qr(rng.normal(size=(32, 32)))
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-10)
    assert linear_cka(x, x @ q) == pytest.approx(1.0, abs=1e-10)
    assert linear_cka(x, 7.5 * x) == pytest.approx(1.0, abs=1e-10)
    assert linear_cka(
        torch.from_numpy(x).float(), torch.from_numpy(x @ q).float()
    ) == pytest.approx(1.0, abs=1e-5)
    big_x, big_y = rng.normal(size=(4000, 16)), rng.normal(size=(4000, 24))
    assert linear_cka(big_x, big_y) < 0.02


def test_cka_matches_hsic_form() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 10))
    y = x[:, :5] @ rng.normal(size=(5, 7)) + 0.5 * rng.normal(size=(60, 7))
    assert linear_cka(x, y) == pytest.approx(_hsic_cka(x, y), rel=1e-9)


def test_ridge_r2_planted_and_noise() -> None:
    rng = np.random.default_rng(2)
    s = rng.normal(size=(1000, 20))
    t = s @ rng.normal(size=(20, 30)) + 3.0
    assert ridge_r2(s, t, alpha=1e-3) > 0.999
    s_big = rng.normal(size=(4000, 20))
    noise = rng.normal(size=(4000, 30))
    # Overfitting 20 features on 2000 samples costs about d / n_train = 0.01 below zero.
    assert abs(ridge_r2(s_big, noise)) < 0.03


def test_ridge_r2_matches_sklearn() -> None:
    rng = np.random.default_rng(3)
    s = rng.normal(size=(300, 12)) * rng.uniform(0.5, 3, size=12)
    t = s @ rng.normal(size=(12, 5)) + rng.normal(size=(300, 5))
    perm = torch.randperm(300, generator=torch.Generator().manual_seed(4)).numpy()
    tr, te = perm[:150], perm[150:]
    mean, std = s[tr].mean(0), s[tr].std(0)
    model = Ridge(alpha=2.0).fit((s[tr] - mean) / std, t[tr])
    expected = r2_score(t[te], model.predict((s[te] - mean) / std), multioutput="variance_weighted")
    assert ridge_r2(s, t, alpha=2.0, seed=4) == pytest.approx(expected, rel=1e-8)


def test_knn_agreement_brute_force() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(50, 8))
    y = x + 0.7 * rng.normal(size=(50, 8))
    k = 5

    def neighbours(m: np.ndarray) -> list[set[int]]:
        z = m / np.linalg.norm(m, axis=1, keepdims=True)
        out = []
        for i in range(len(z)):
            sims = [(float(z[i] @ z[j]), j) for j in range(len(z)) if j != i]
            out.append({j for _, j in sorted(sims, reverse=True)[:k]})
        return out

    nx, ny = neighbours(x), neighbours(y)
    expected = np.mean([len(a & b) / k for a, b in zip(nx, ny, strict=True)])
    assert knn_agreement(x, y, k=k) == pytest.approx(expected)
    assert knn_agreement(x, x, k=k) == 1.0


def test_metrics_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="same number of rows"):
        linear_cka(np.zeros((5, 2)), np.zeros((6, 2)))
    with pytest.raises(ValueError, match="k must be"):
        knn_agreement(np.ones((5, 2)), np.ones((5, 2)), k=5)

"""`pc_r2` and centred kNN agreement: measures that a single dominant direction cannot saturate."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA
from sklearn.linear_model import Ridge
from sklearn.metrics import r2_score

from vitkd.metrics import knn_agreement, linear_cka, pc_r2, ridge_r2
from vitkd.metrics.pc_r2 import FOLDS


def _teacher(n: int = 400, d: int = 64, seed: int = 0) -> torch.Tensor:
    # one direction 30x the others, like a random ViT's CLS (colour and brightness)
    g = torch.Generator().manual_seed(seed)
    scales = torch.cat([torch.tensor([30.0]), torch.linspace(1.0, 0.3, d - 1)])
    return torch.randn(n, d, generator=g, dtype=torch.float64) * scales + 5.0


def test_equal_student_scores_one_and_a_linear_copy_too() -> None:
    t = _teacher()
    assert pc_r2(t, t) == pytest.approx(1.0, abs=1e-3)
    mix = t @ torch.randn(64, 96, generator=torch.Generator().manual_seed(1), dtype=t.dtype)
    assert pc_r2(mix * 7 + 3, t) == pytest.approx(1.0, abs=1e-3)


def test_a_student_with_only_the_first_component_scores_high_on_cka_and_low_here() -> None:
    t = _teacher()
    g = torch.Generator().manual_seed(2)
    first = t[:, :1] + 0.01 * torch.randn(len(t), 1, generator=g, dtype=t.dtype)
    student = torch.cat([first, torch.randn(len(t), 31, generator=g, dtype=t.dtype)], 1)
    assert linear_cka(student, t) > 0.99
    assert ridge_r2(student, t) > 0.9
    assert pc_r2(student, t) < 0.1
    # centring exposes the same failure in neighbour sets
    assert knn_agreement(student, t, 10, centred=True) > knn_agreement(student, t, 10)


def test_matches_an_independent_sklearn_computation() -> None:
    t = _teacher(n=300)
    g = torch.Generator().manual_seed(3)
    s = t[:, :40] @ torch.randn(40, 48, generator=g, dtype=t.dtype)
    s = s + 2.0 * torch.randn(300, 48, generator=g, dtype=t.dtype)
    x, y = s.numpy(), t.numpy()
    k = min(32, len(y) // 10)
    z = PCA(n_components=k, svd_solver="full").fit_transform(y)
    z = z / z.std(0)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0)).numpy()
    pred = np.empty_like(z)
    for fold in range(FOLDS):
        score = perm[fold::FOLDS]
        fit = np.setdiff1d(np.arange(len(y)), score)
        pca = PCA(n_components=min(2 * k, len(fit) // 2, x.shape[1]), svd_solver="full").fit(x[fit])
        w = pca.transform(x[fit])
        sd = w.std(0)
        ridge = Ridge(alpha=1e-2 * len(fit)).fit(w / sd, z[fit])
        pred[score] = ridge.predict(pca.transform(x[score]) / sd)
    expected = r2_score(z, pred, multioutput="uniform_average")
    assert pc_r2(s, t) == pytest.approx(expected, abs=1e-8)


def test_unrelated_spaces_score_about_zero_and_bad_input_is_named() -> None:
    t = _teacher()
    r = torch.randn(len(t), 32, generator=torch.Generator().manual_seed(4), dtype=t.dtype)
    assert pc_r2(r, t) < 0.05
    with pytest.raises(ValueError, match="k must be >= 1"):
        pc_r2(t, t, k=0)
    with pytest.raises(ValueError, match="constant"):
        pc_r2(t, torch.ones_like(t))
    with pytest.raises(ValueError, match="at least 10 samples"):
        pc_r2(t[:6], t[:6])


def test_centred_knn_agreement_is_the_plain_one_on_centred_inputs() -> None:
    t = _teacher(n=120)
    s = t + 0.5 * torch.randn(t.shape, generator=torch.Generator().manual_seed(5), dtype=t.dtype)
    assert knn_agreement(s, t, 5, centred=True) == knn_agreement(s - s.mean(0), t - t.mean(0), 5)

"""Held-out R^2 of a ridge map from one embedding space to another."""

import torch

from vitkd.metrics._arrays import ArrayLike, paired


def fit_ridge(x: torch.Tensor, y: torch.Tensor, alpha: float) -> torch.Tensor:
    """Closed-form ridge weights W (d_in, d_out) minimising ||XW - Y||^2 + alpha ||W||^2."""
    n, d = x.shape
    if d <= n:
        gram = x.T @ x + alpha * torch.eye(d, dtype=x.dtype)
        return torch.linalg.solve(gram, x.T @ y)
    # Dual form is cheaper when there are fewer samples than features.
    gram = x @ x.T + alpha * torch.eye(n, dtype=x.dtype)
    return x.T @ torch.linalg.solve(gram, y)


def split_halves(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of a random half/half split of `n` samples (fit half, score half)."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[: n // 2], perm[n // 2 :]


def standardise(fit: torch.Tensor, score: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both matrices standardised with the mean/std of `fit` (constant columns left unscaled)."""
    mean, std = fit.mean(0), fit.std(0, correction=0)
    std = torch.where(std > 0, std, torch.ones_like(std))
    return (fit - mean) / std, (score - mean) / std


def ridge_r2(student: ArrayLike, teacher: ArrayLike, alpha: float = 1.0, seed: int = 0) -> float:
    """R^2 of a ridge regression from student to teacher embeddings, scored on held-out samples.

    The samples are shuffled with `seed` and split in two halves. On the first half the student
    features are standardised (mean/std fitted there) and a ridge map with intercept is fitted to
    the teacher features; on the second half the variance-weighted R^2 over all teacher dimensions
    is reported: ``1 - sum_ij (t_ij - p_ij)^2 / sum_ij (t_ij - mean_j)^2`` (sklearn's
    ``r2_score(..., multioutput="variance_weighted")``).

    Args:
        student: (n, ds) student embeddings.
        teacher: (n, dt) teacher embeddings of the same samples.
        alpha: ridge penalty on the standardised features.
        seed: seed of the random half/half split.

    Returns:
        R^2 (1 for a perfect linear map, about 0 or below for unrelated spaces).
    """
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    x, y = paired(student, teacher, min_rows=4)
    train, test = split_halves(x.shape[0], seed)
    x_train, x_test = standardise(x[train], x[test])
    y_mean = y[train].mean(0)
    weights = fit_ridge(x_train, y[train] - y_mean, alpha)
    pred = x_test @ weights + y_mean
    y_test = y[test]
    ss_res = ((y_test - pred) ** 2).sum()
    ss_tot = ((y_test - y_test.mean(0)) ** 2).sum()
    if ss_tot <= 0:
        raise ValueError("teacher embeddings are constant on the held-out half; R^2 is undefined")
    return float(1.0 - ss_res / ss_tot)

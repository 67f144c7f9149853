"""Cross-validated R^2 of a map onto the teacher's standardised principal components."""

import torch

from vitkd.metrics._arrays import ArrayLike, paired
from vitkd.metrics.ridge import fit_ridge

FOLDS = 5


def whitening(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Centre (d,) and map (d, k') onto the top principal components of `x`, each at unit
    variance (k' = k capped at the numerical rank of `x`)."""
    centre = x.mean(0)
    _, sing, vh = torch.linalg.svd(x - centre, full_matrices=False)
    if not sing.numel() or sing[0] <= 0:
        raise ValueError("the embeddings are constant: no principal component to use")
    k = min(k, int((sing > sing[0] * 1e-6).sum()))
    proj = vh[:k].T
    return centre, proj / ((x - centre) @ proj).std(0, correction=0)


def pc_r2(
    student: ArrayLike, teacher: ArrayLike, k: int = 32, alpha: float = 1e-2, seed: int = 0
) -> float:
    """Mean cross-validated R^2 over the teacher's top-k principal components, each at unit variance.

    CKA and the variance-weighted ridge R^2 are dominated by the teacher's largest direction:
    a random ViT's CLS is mostly one colour/brightness axis, so a student that copies only that
    axis already scores near 1 on both. Here every direction counts the same:

    1. targets: the teacher centred and projected on its top-k principal directions, each
       divided by its standard deviation (k is capped at n / 10 and at the teacher's rank, so
       that every component can be estimated from the samples at hand);
    2. 5-fold cross-validation (folds drawn with `seed`): on the fit folds the student is
       centred and whitened on its own top-2k principal components (scale-free, and an exact
       copy of the teacher spans the targets), then a ridge map with intercept and penalty
       ``alpha * n_fit`` is fitted onto the targets; the held-out fold is predicted;
    3. ``R^2_j = 1 - sum_i (z_ij - p_ij)^2 / sum_i (z_ij - mean_j)^2`` per component over the
       pooled held-out predictions, averaged uniformly over j (sklearn's
       ``multioutput="uniform_average"``).

    A student equal to the teacher scores 1 (given enough samples: n >= 10 k); one that
    carries only the first component about 1/k; unrelated spaces about 0 or below.

    Args:
        student: (n, ds) student embeddings.
        teacher: (n, dt) teacher embeddings of the same samples.
        k: teacher components (at most; see above).
        alpha: ridge penalty per fit sample on the whitened student features.
        seed: seed of the fold assignment.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    x, y = paired(student, teacher, min_rows=2 * FOLDS)
    n = x.shape[0]
    centre, proj = whitening(y, max(1, min(k, n // 10)))
    z = (y - centre) @ proj
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    pred = torch.empty_like(z)
    for fold in range(FOLDS):
        score = perm[fold::FOLDS]
        keep = torch.ones(n, dtype=torch.bool)
        keep[score] = False
        x_fit, z_fit = x[keep], z[keep]
        x_centre, x_proj = whitening(x_fit, min(2 * z.shape[1], x_fit.shape[0] // 2))
        z_mean = z_fit.mean(0)
        weights = fit_ridge((x_fit - x_centre) @ x_proj, z_fit - z_mean, alpha * len(x_fit))
        pred[score] = ((x[score] - x_centre) @ x_proj) @ weights + z_mean
    ss_res = ((z - pred) ** 2).sum(0)
    ss_tot = ((z - z.mean(0)) ** 2).sum(0)
    return float((1.0 - ss_res / ss_tot).mean())

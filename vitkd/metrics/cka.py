"""Linear centred kernel alignment (CKA) between two representations of the same samples."""

import torch

from vitkd.metrics._arrays import ArrayLike, paired


def linear_cka(x: ArrayLike, y: ArrayLike) -> float:
    """Linear CKA of Kornblith et al. (2019), "Similarity of Neural Network Representations Revisited".

    With column-centred X (n, d1) and Y (n, d2):
    ``CKA = ||Y^T X||_F^2 / (||X^T X||_F * ||Y^T Y||_F)`` -- the normalised HSIC with linear kernels.
    It is 1 for identical representations, invariant to orthogonal transforms and isotropic
    scaling, and close to 0 for independent representations when n >> d.

    Args:
        x: (n, d1) numpy array or torch tensor.
        y: (n, d2) matrix describing the same n samples.

    Returns:
        CKA in [0, 1]; 0.0 when either representation is constant.
    """
    xt, yt = paired(x, y)
    xt = xt - xt.mean(dim=0, keepdim=True)
    yt = yt - yt.mean(dim=0, keepdim=True)
    # The (d, d) Gram forms keep memory at O(d^2) instead of the O(n^2) kernel matrices.
    cross = torch.linalg.matrix_norm(yt.T @ xt) ** 2
    norm_x = torch.linalg.matrix_norm(xt.T @ xt)
    norm_y = torch.linalg.matrix_norm(yt.T @ yt)
    denom = norm_x * norm_y
    if denom <= 0:
        return 0.0
    return float(cross / denom)

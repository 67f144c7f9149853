"""Turn numpy arrays or torch tensors into validated float64 torch matrices."""

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor


def as_matrix(x: ArrayLike, name: str) -> torch.Tensor:
    """Return `x` as a detached float64 CPU tensor of shape (n, d), or raise a clear error."""
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    if t.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (n, d) matrix, got shape {tuple(t.shape)}")
    t = t.detach().to(device="cpu", dtype=torch.float64)
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or infinite values; clean the embeddings first")
    return t


def paired(x: ArrayLike, y: ArrayLike, min_rows: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate two matrices that describe the same n samples (row i of x matches row i of y)."""
    xt, yt = as_matrix(x, "x"), as_matrix(y, "y")
    if xt.shape[0] != yt.shape[0]:
        raise ValueError(
            f"x and y must have the same number of rows (samples), got {xt.shape[0]} and {yt.shape[0]}"
        )
    if xt.shape[0] < min_rows:
        raise ValueError(f"need at least {min_rows} samples, got {xt.shape[0]}")
    return xt, yt

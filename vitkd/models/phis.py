"""PHI-S: PCA-Hadamard isotropic standardisation of one teacher's features (fitted once)."""

from __future__ import annotations

import torch
from torch import nn

from vitkd.models.hadamard import hadamard_matrix


class PhiS(nn.Module):
    """`y = W (x - mu)` with `W = H U^T / sqrt(mean(lambda))` (Ranzinger et al. 2024, PHI-S,
    https://arxiv.org/abs/2410.01680, eq. 11; as NVlabs RADIO's `get_phi_s_matrix`).

    `U, lambda` are the eigenvectors and eigenvalues of the features' covariance, `H` a
    normalised Hadamard matrix. Every output dimension then has the same variance, 1, without
    whitening (the spectrum's shape is kept), so teachers of different scales weigh alike.
    The buffers are saved in checkpoints and exports; `inverse` maps back to teacher space.

    Args:
        dim: feature width D.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("matrix", torch.eye(dim))
        self.register_buffer("inverse_matrix", torch.eye(dim))

    @torch.no_grad()
    def fit(self, features: torch.Tensor) -> PhiS:
        """Fit on (n, D) features (float64 eigendecomposition)."""
        x = features.detach().double().reshape(-1, features.shape[-1])
        return self.fit_moments(x.shape[0], x.sum(dim=0), x.T @ x)

    @torch.no_grad()
    def fit_moments(self, count: int, total: torch.Tensor, outer: torch.Tensor) -> PhiS:
        """Fit from the count, sum (D,) and sum of outer products (D, D) of the features: the
        moments add up over batches and ranks, so every rank fits the same transform."""
        if count < 2:
            raise ValueError(f"PHI-S needs at least 2 feature vectors to fit, got {count}")
        mean = total.double() / count
        # the unbiased covariance, as torch.cov
        cov = (outer.double() - count * torch.outer(mean, mean)) / (count - 1)
        eigenvalues, eigenvectors = torch.linalg.eigh(cov)
        eigenvalues = eigenvalues.clamp(min=0)
        scale = eigenvalues.mean().sqrt().clamp(min=1e-12)
        rotation = hadamard_matrix(len(mean)).to(eigenvectors) @ eigenvectors.T  # orthogonal
        self.mean.copy_(mean.float())
        self.matrix.copy_((rotation / scale).float())
        self.inverse_matrix.copy_((rotation.T * scale).float())
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., D) teacher features -> standardised (..., D), in float32."""
        return (x.float() - self.mean) @ self.matrix.T

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """Standardised (..., D) -> teacher space."""
        return y.float() @ self.inverse_matrix.T + self.mean

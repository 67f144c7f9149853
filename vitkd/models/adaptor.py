"""Feature adaptor (RADIO-style): a small MLP from student token width to teacher token width."""

from __future__ import annotations

from torch import Tensor, nn


class FeatureAdaptor(nn.Module):
    """``Linear(in, hidden) -> GELU -> Linear(hidden, out)`` applied token-wise.

    Shapes: (..., in_dim) -> (..., out_dim). ``hidden_dim`` defaults to ``max(in_dim, out_dim)``.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int | None = None) -> None:
        """Build the two-layer MLP with truncated-normal weights and zero biases."""
        super().__init__()
        hidden = hidden_dim or max(in_dim, out_dim)
        self.in_dim, self.out_dim, self.hidden_dim = in_dim, out_dim, hidden
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim))
        for layer in (self.mlp[0], self.mlp[2]):
            nn.init.trunc_normal_(layer.weight, std=0.02)
            nn.init.zeros_(layer.bias)

    def forward(self, x: Tensor) -> Tensor:
        """Map student tokens (..., in_dim) to the teacher width (..., out_dim)."""
        return self.mlp(x)

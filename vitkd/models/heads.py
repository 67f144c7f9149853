"""DINO/iBOT projection head (DINOv2): MLP, L2-normalised bottleneck, weight-normalised prototypes."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm


class DINOHead(nn.Module):
    """Projection head of DINOv2 (``dinov2/layers/dino_head.py``).

    ``in_dim -> hidden -> GELU -> hidden -> GELU -> bottleneck`` (``nlayers`` linear layers),
    L2-normalise, then a bias-free weight-normalised linear ``bottleneck -> out_dim``
    (the prototypes) whose magnitude ``g`` is fixed at 1, so logits are cosine similarities.

    Shapes: (..., in_dim) -> (..., out_dim).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int = 65536,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
        nlayers: int = 3,
    ) -> None:
        """Build the head with DINOv2's init (truncated normal 0.02, zero biases)."""
        super().__init__()
        if nlayers < 1:
            raise ValueError(f"nlayers={nlayers}: a DINO head needs at least one layer")
        if nlayers == 1:
            layers: list[nn.Module] = [nn.Linear(in_dim, bottleneck_dim)]
        else:
            layers = [nn.Linear(in_dim, hidden_dim), nn.GELU()]
            for _ in range(nlayers - 2):
                layers += [nn.Linear(hidden_dim, hidden_dim), nn.GELU()]
            layers.append(nn.Linear(hidden_dim, bottleneck_dim))
        self.mlp = nn.Sequential(*layers)
        self.mlp.apply(_init_linear)
        self.last_layer = weight_norm(nn.Linear(bottleneck_dim, out_dim, bias=False))
        magnitude = self.last_layer.parametrizations.weight.original0
        with torch.no_grad():
            magnitude.fill_(1.0)
        magnitude.requires_grad_(False)

    def forward(self, x: Tensor) -> Tensor:
        """Prototype scores (..., out_dim) of features (..., in_dim)."""
        x = self.mlp(x)
        eps = 1e-6 if x.dtype == torch.float16 else 1e-12
        x = nn.functional.normalize(x, dim=-1, p=2, eps=eps)
        return self.last_layer(x)


def _init_linear(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)

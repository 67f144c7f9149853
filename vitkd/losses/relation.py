"""Relation-based distillation: match the batch similarity matrices of student and teacher.

References:
- Park et al., "Relational Knowledge Distillation" (CVPR 2019), https://arxiv.org/abs/1904.05068
- Tung & Mori, "Similarity-Preserving Knowledge Distillation" (ICCV 2019),
  https://arxiv.org/abs/1907.09682
"""

import torch
import torch.nn.functional as F
from torch import nn


class RelationLoss(nn.Module):
    """Mean squared error between the off-diagonal entries of the two (B, B) similarity matrices.

    Student (B, Ds) and teacher (B, Dt) may differ in width: only the B x B matrices are compared.
    With ``normalize`` (default) the matrices hold cosine similarities (rows L2-normalised), so
    the diagonal is always 1 and is excluded; without it they are raw dot products (then only
    meaningful when both spaces share a scale) and the diagonal is excluded as well, so the loss
    is always about relations between different images. ``loss = sum_{i != j} (S_s - S_t)_ij^2 /
    (B (B - 1))``; B = 1 gives 0 with a zero gradient. The teacher side carries no gradient.
    """

    def __init__(self, normalize: bool = True) -> None:
        """Create the loss; ``normalize`` compares cosine rather than dot-product matrices."""
        super().__init__()
        self.normalize = normalize

    def _similarity(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        if self.normalize:
            x = F.normalize(x, dim=-1, eps=1e-8)
        return x @ x.t()

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """Scalar loss for student embeddings (B, Ds) and teacher embeddings (B, Dt)."""
        if student.ndim != 2 or teacher.ndim != 2 or student.shape[0] != teacher.shape[0]:
            raise ValueError(
                f"student {tuple(student.shape)} and teacher {tuple(teacher.shape)} must be "
                "(B, Ds) and (B, Dt) with the same batch size B"
            )
        n = student.shape[0]
        if n < 2:
            return (student * 0.0).sum()
        diff = self._similarity(student) - self._similarity(teacher.detach())
        off_diagonal = ~torch.eye(n, dtype=torch.bool, device=diff.device)
        return diff[off_diagonal].pow(2).mean()

"""Feature regression loss: cosine + smooth-L1 between student adaptor outputs and teacher tokens.

Needs no teacher heads. References:
- Ranzinger et al., "AM-RADIO: Agglomerative Vision Foundation Model" (CVPR 2024),
  https://arxiv.org/abs/2312.06709
- Ma et al., "Towards a Generalizable Pathology Foundation Model via Unified Knowledge
  Distillation" (GPFM, 2024), https://arxiv.org/abs/2407.18449
"""

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


class FeatureLossTerms(NamedTuple):
    """Unweighted terms of :class:`FeatureLoss`, for logging."""

    cosine: torch.Tensor
    smooth_l1: torch.Tensor


class FeatureLoss(nn.Module):
    """``cos_weight * mean(1 - cos(s, t)) + smooth_l1_weight * smooth_l1(s, t, beta)``.

    Shapes: student and teacher (..., D) with the same shape, e.g. CLS (B, D) or patch tokens
    (B, N, D) (resize the teacher's grid to the student's first). With ``normalize`` both are
    L2-normalised along D before the smooth-L1 term (mean over all elements); the cosine term is
    the mean over all leading positions. The teacher side carries no gradient. Zero when the
    student equals the teacher. With unit vectors each element differs by about 1/sqrt(D), well
    inside ``beta = 1``, so the smooth-L1 term then acts as half a mean squared error.
    """

    def __init__(
        self,
        cos_weight: float = 1.0,
        smooth_l1_weight: float = 1.0,
        beta: float = 1.0,
        normalize: bool = True,
    ) -> None:
        """Create the loss.

        Args:
            cos_weight: weight of the cosine term.
            smooth_l1_weight: weight of the smooth-L1 term.
            beta: smooth-L1 transition point.
            normalize: L2-normalise student and teacher along the last dimension first.
        """
        super().__init__()
        if cos_weight < 0 or smooth_l1_weight < 0:
            raise ValueError(
                f"loss weights must be >= 0, got cos={cos_weight}, smooth_l1={smooth_l1_weight}"
            )
        if beta < 0:
            raise ValueError(f"smooth-L1 beta must be >= 0, got {beta}")
        self.cos_weight = cos_weight
        self.smooth_l1_weight = smooth_l1_weight
        self.beta = beta
        self.normalize = normalize

    def forward_terms(self, student: torch.Tensor, teacher: torch.Tensor) -> FeatureLossTerms:
        """The unweighted cosine and smooth-L1 terms for student and teacher (..., D)."""
        if student.shape != teacher.shape:
            raise ValueError(
                f"student {tuple(student.shape)} and teacher {tuple(teacher.shape)} features must "
                "have the same shape: map the student through an adaptor to the teacher width and "
                "resize the patch grid first"
            )
        s = student.float()
        t = teacher.detach().float()
        cosine = (1.0 - F.cosine_similarity(s, t, dim=-1, eps=1e-8)).mean()
        if self.normalize:
            s = F.normalize(s, dim=-1, eps=1e-8)
            t = F.normalize(t, dim=-1, eps=1e-8)
        smooth_l1 = F.smooth_l1_loss(s, t, beta=self.beta)
        return FeatureLossTerms(cosine=cosine, smooth_l1=smooth_l1)

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """Scalar weighted loss for student and teacher features (..., D)."""
        terms = self.forward_terms(student, teacher)
        return self.cos_weight * terms.cosine + self.smooth_l1_weight * terms.smooth_l1

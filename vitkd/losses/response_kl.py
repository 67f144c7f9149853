"""Response-based distillation: temperature-scaled cross-entropy / KL between logit distributions.

References:
- Hinton et al., "Distilling the Knowledge in a Neural Network" (2015), for the T^2 scaling,
  https://arxiv.org/abs/1503.02531
- pytorch/torchtune at commit a398d54: ``ForwardKLLoss`` in
  ``torchtune/modules/loss/kd_losses.py``, for the masked cross-entropy form,
  https://github.com/pytorch/torchtune/blob/a398d547f58ecfb06f5b3b1cdb80fda8ba96ac14/torchtune/modules/loss/kd_losses.py
"""

import torch
import torch.nn.functional as F
from torch import nn


class ResponseKLLoss(nn.Module):
    """``T^2 * mean_{unmasked} [-sum_k softmax(t / T)_k * log_softmax(s / T)_k]``.

    The default is the reference (torchtune) cross-entropy form, which equals the forward KL
    ``KL(p_t || p_s)`` plus the teacher entropy: same gradient for the student, but not zero
    when student equals teacher. ``kl=True`` subtracts the teacher entropy, giving the true KL
    (zero when the two agree). Student positions with infinite logits (e.g. banned classes) are
    left out of the sum, as torchtune does. Shapes: logits (..., K); mask (...) bool, True
    where the position counts (None: all). No position counted gives 0. The teacher carries no
    gradient.
    """

    def __init__(self, temperature: float = 1.0, kl: bool = False) -> None:
        """Create the loss.

        Args:
            temperature: softening temperature T (> 0); the result is scaled by T^2.
            kl: subtract the teacher entropy (true KL divergence) instead of the CE form.
        """
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature
        self.kl = kl

    def forward(
        self,
        student_logits: torch.Tensor,
        teacher_logits: torch.Tensor,
        mask: torch.Tensor | None = None,
        temperature: float | None = None,
    ) -> torch.Tensor:
        """Scalar loss for student and teacher logits (..., K) and an optional bool mask (...).

        `temperature` overrides the constructor's T for this call: the value of a `Schedule` at
        the current step (`vitkd.distill.config.Schedule.at`).
        """
        if student_logits.shape != teacher_logits.shape:
            raise ValueError(
                f"student {tuple(student_logits.shape)} and teacher {tuple(teacher_logits.shape)} "
                "logits must have the same shape (..., K)"
            )
        if mask is not None and mask.shape != student_logits.shape[:-1]:
            raise ValueError(
                f"mask {tuple(mask.shape)} must match the logits' leading shape {tuple(student_logits.shape[:-1])}"
            )
        temp = self.temperature if temperature is None else temperature
        if not temp > 0:
            raise ValueError(f"temperature must be > 0, got {temp}")
        teacher_prob = F.softmax(teacher_logits.detach().float() / temp, dim=-1)
        student_logprob = F.log_softmax(student_logits.float() / temp, dim=-1)
        products = (teacher_prob * student_logprob).masked_fill(torch.isinf(student_logits), 0.0)
        per_position = -products.sum(dim=-1)
        if self.kl:
            per_position = per_position + torch.xlogy(teacher_prob, teacher_prob).sum(dim=-1)
        if mask is None:
            mean = per_position.mean()
        else:
            # where, not a product: a masked-out position may hold nan/inf (e.g. padding)
            mask = mask.to(device=per_position.device, dtype=torch.bool)
            kept = torch.where(mask, per_position, torch.zeros_like(per_position))
            mean = kept.sum() / mask.sum().clamp(min=1).to(kept.dtype)
        return mean * temp * temp

"""iBOT masked-patch loss: cross-entropy between student and teacher patch prototype scores.

References:
- Zhou et al., "iBOT: Image BERT Pre-Training with Online Tokenizer" (ICLR 2022),
  https://arxiv.org/abs/2111.07832
- Oquab et al., "DINOv2" (2023), https://arxiv.org/abs/2304.07193
- facebookresearch/dinov2 at commit fc49f49: ``dinov2/loss/ibot_patch_loss.py``,
  https://github.com/facebookresearch/dinov2/blob/fc49f49d734c767272a4ea0e18ff2ab8e60fc92d/dinov2/loss/ibot_patch_loss.py
"""

import torch
import torch.nn.functional as F

from vitkd.losses.centering import PrototypeLoss, check_centering_mode, sinkhorn_knopp


class iBOTPatchLoss(PrototypeLoss):
    """Per-token cross-entropy on masked patches, each image weighted 1 / (its masked count).

    ``loss = -(1 / B) * sum_b sum_{n masked in b} (1 / M_b) * sum_k p_t[b, n, k] *
    log_softmax(s[b, n] / student_temp)[k]`` where B counts all global-crop images (masked or
    not) and M_b is image b's number of masked tokens. Two equivalent forms:

    - :meth:`forward`: dense (B, N, K) tensors and a (B, N) bool mask;
    - :meth:`forward_masked`: only the masked tokens, flattened (M, K) in ``masks[masks]`` order
      (what :func:`vitkd.data.masking.flatten_masks` describes), optionally padded to a fixed
      length with the real count in ``n_masked_patches``.

    Teacher targets come from :meth:`teacher_targets` (softmax centring with its own lagged EMA
    centre, or Sinkhorn-Knopp over the global set of masked tokens) and carry no gradient.
    """

    @torch.no_grad()
    def teacher_targets(
        self,
        teacher_logits: torch.Tensor,
        temp: float,
        mode: str = "softmax",
        valid: torch.Tensor | None = None,
        update_center: bool = True,
        n_iterations: int = 3,
    ) -> torch.Tensor:
        """Teacher probabilities (..., K) float32 from teacher patch logits (..., K).

        Args:
            teacher_logits: teacher patch scores, usually the masked tokens (M, K).
            temp: teacher temperature.
            mode: ``"softmax"`` (lagged centre, then the EMA update over the valid rows when
                ``update_center``) or ``"sinkhorn"`` (over the valid rows of all ranks).
            valid: optional bool mask over the leading shape, False for padding rows; those
                rows are left out of the centre and of Sinkhorn-Knopp (zeros there).
            update_center: in softmax mode, apply :meth:`update_center` afterwards.
            n_iterations: Sinkhorn-Knopp iterations.
        """
        check_centering_mode(mode)
        if teacher_logits.shape[-1] != self.out_dim:
            raise ValueError(
                f"teacher_logits must end in {self.out_dim} prototypes, got {tuple(teacher_logits.shape)}"
            )
        if mode == "sinkhorn":
            flat_valid = None if valid is None else valid.reshape(-1)
            flat = sinkhorn_knopp(
                teacher_logits.reshape(-1, self.out_dim), temp, n_iterations, flat_valid
            )
            return flat.view(teacher_logits.shape)
        probs = self.center.probs(teacher_logits, temp)
        if update_center:
            self.update_center(teacher_logits, valid)
        return probs

    @torch.no_grad()
    def update_center(
        self, teacher_logits: torch.Tensor, valid: torch.Tensor | None = None
    ) -> None:
        """EMA update of the softmax centre with the global mean over the (valid) token rows."""
        self.center.update(teacher_logits, valid)

    def _token_cross_entropy(
        self, student_logits: torch.Tensor, teacher_probs: torch.Tensor
    ) -> torch.Tensor:
        log_p = F.log_softmax(student_logits.float() / self.student_temp, dim=-1)
        return -(teacher_probs.detach().float() * log_p).sum(dim=-1)

    def forward(
        self,
        student_patch_logits: torch.Tensor,
        teacher_patch_probs: torch.Tensor,
        masks: torch.Tensor,
    ) -> torch.Tensor:
        """Scalar iBOT loss, dense form.

        Args:
            student_patch_logits: student patch head logits (B, N, K).
            teacher_patch_probs: teacher patch targets (B, N, K); unmasked positions are ignored.
            masks: bool (B, N), True where the student's token was masked.
        """
        if (
            student_patch_logits.ndim != 3
            or student_patch_logits.shape != teacher_patch_probs.shape
        ):
            raise ValueError(
                f"student {tuple(student_patch_logits.shape)} and teacher "
                f"{tuple(teacher_patch_probs.shape)} patch tensors must both be (B, N, K)"
            )
        if masks.shape != student_patch_logits.shape[:2]:
            raise ValueError(
                f"masks {tuple(masks.shape)} must be (B, N) = {tuple(student_patch_logits.shape[:2])}"
            )
        weights = masks.float()
        per_token = self._token_cross_entropy(student_patch_logits, teacher_patch_probs)
        per_image = (per_token * weights).sum(dim=-1) / weights.sum(dim=-1).clamp(min=1.0)
        return per_image.sum() / masks.shape[0]

    def forward_masked(
        self,
        student_logits_masked: torch.Tensor,
        teacher_probs_masked: torch.Tensor,
        masks: torch.Tensor,
        n_masked_patches: int | None = None,
        masks_weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Scalar iBOT loss on the masked tokens only (dinov2's ``forward_masked``).

        Args:
            student_logits_masked: student logits of the masked tokens (M, K), ``masks[masks]``
                order, possibly padded past ``n_masked_patches``.
            teacher_probs_masked: teacher targets (M, K) in the same order.
            masks: bool (B, N) of all global-crop images, masked or not (B is the divisor).
            n_masked_patches: number of real rows when the inputs are padded.
            masks_weight: (n_masked_patches,) per-token weight, 1 / (its image's masked count);
                computed from ``masks`` when None.
        """
        if (
            student_logits_masked.shape != teacher_probs_masked.shape
            or student_logits_masked.ndim != 2
        ):
            raise ValueError(
                f"student {tuple(student_logits_masked.shape)} and teacher "
                f"{tuple(teacher_probs_masked.shape)} masked tensors must both be (M, K)"
            )
        if masks.ndim != 2:
            raise ValueError(f"masks must be (B, N), got {tuple(masks.shape)}")
        n_real = int(masks.sum()) if n_masked_patches is None else int(n_masked_patches)
        if n_real > student_logits_masked.shape[0]:
            raise ValueError(
                f"{n_real} masked patches but only {student_logits_masked.shape[0]} rows given"
            )
        if masks_weight is None:
            per_image = 1.0 / masks.sum(dim=-1).clamp(min=1).float()
            masks_weight = per_image.unsqueeze(-1).expand_as(masks)[masks.bool()]
        if masks_weight.shape[0] != n_real:
            raise ValueError(
                f"masks_weight has {masks_weight.shape[0]} entries for {n_real} masked patches"
            )
        per_token = self._token_cross_entropy(
            student_logits_masked[:n_real], teacher_probs_masked[:n_real]
        )
        return (per_token * masks_weight.to(per_token)).sum() / masks.shape[0]

"""DINO CLS-token loss: cross-entropy between student and centred teacher prototype scores.

References:
- Caron et al., "Emerging Properties in Self-Supervised Vision Transformers" (DINO, 2021),
  https://arxiv.org/abs/2104.14294
- Oquab et al., "DINOv2: Learning Robust Visual Features without Supervision" (2023),
  https://arxiv.org/abs/2304.07193
- facebookresearch/dinov2 at commit fc49f49: ``dinov2/loss/dino_clstoken_loss.py`` and the pair
  normalisation in ``dinov2/train/ssl_meta_arch.py``,
  https://github.com/facebookresearch/dinov2/blob/fc49f49d734c767272a4ea0e18ff2ab8e60fc92d/dinov2/loss/dino_clstoken_loss.py
"""

import torch
import torch.nn.functional as F

from vitkd.losses.centering import PrototypeLoss, check_centering_mode, sinkhorn_knopp


def dino_pair_count(n_global: int, n_local: int) -> int:
    """Number of (student view, teacher view) pairs: ``n_g * (n_g - 1) + n_l * n_g`` (18 for 2+8)."""
    return n_global * (n_global - 1) + n_local * n_global


class DINOLoss(PrototypeLoss):
    """DINO loss over multi-crop views with the view swap and pair normalisation of DINOv2.

    Shapes: ``n_g`` global and ``n_l`` local crops of ``B`` images, ``K`` prototypes.

    - Every student view is compared with every teacher (global) view except its own: student
      global ``i`` against teacher global ``j != i`` (for two globals this is the swap: teacher
      target 0 pairs with student global 1 and vice versa), each local against every teacher
      global.
    - Per pair: ``mean_b -sum_k p_t[j, b, k] * log_softmax(s[v, b] / student_temp)[k]``; the
      loss is the sum over pairs divided by :func:`dino_pair_count` (18 for 2 + 8, 2 for 2 + 0).
    - Teacher targets come from :meth:`teacher_targets` with softmax centring (lagged EMA centre
      in :attr:`center`) or Sinkhorn-Knopp; they carry no gradient.

    Typical step::

        t_probs = dino.teacher_targets(teacher_logits, temp, mode="softmax")  # also updates centre
        loss = dino(student_global, student_local, t_probs)
    """

    @torch.no_grad()
    def teacher_targets(
        self,
        teacher_logits: torch.Tensor,
        temp: float,
        mode: str = "softmax",
        update_center: bool = True,
        n_iterations: int = 3,
    ) -> torch.Tensor:
        """Teacher probabilities (n_g, B, K) float32 from teacher head logits (n_g, B, K).

        Args:
            teacher_logits: teacher prototype scores of the global crops.
            temp: teacher temperature (warmed up 0.04 -> 0.07 by the caller).
            mode: ``"softmax"`` (centre of the previous steps, then the EMA update when
                ``update_center``) or ``"sinkhorn"`` (Sinkhorn-Knopp over all global crops of the
                global batch; the centre is left alone).
            update_center: in softmax mode, apply :meth:`update_center` after computing targets.
            n_iterations: Sinkhorn-Knopp iterations.
        """
        check_centering_mode(mode)
        self._check_views(teacher_logits, "teacher_logits")
        if mode == "sinkhorn":
            flat = sinkhorn_knopp(teacher_logits.flatten(0, 1), temp, n_iterations)
            return flat.view(teacher_logits.shape)
        probs = self.center.probs(teacher_logits, temp)
        if update_center:
            self.update_center(teacher_logits)
        return probs

    @torch.no_grad()
    def update_center(self, teacher_logits: torch.Tensor) -> None:
        """EMA update of the softmax centre with the global mean over all rows of (..., K)."""
        self.center.update(teacher_logits)

    def forward(
        self,
        student_global: torch.Tensor,
        student_local: torch.Tensor | None,
        teacher_probs: torch.Tensor,
    ) -> torch.Tensor:
        """Scalar DINO loss.

        Args:
            student_global: student head logits of the global crops (n_g, B, K).
            student_local: student head logits of the local crops (n_l, B, K), or None / n_l = 0.
            teacher_probs: teacher targets (n_g, B, K) from :meth:`teacher_targets`.
        """
        self._check_views(student_global, "student_global")
        if teacher_probs.shape != student_global.shape:
            raise ValueError(
                f"teacher_probs {tuple(teacher_probs.shape)} must match student_global "
                f"{tuple(student_global.shape)} (n_g, B, K)"
            )
        n_global = student_global.shape[0]
        n_local = 0
        if student_local is not None and student_local.shape[0] > 0:
            self._check_views(student_local, "student_local")
            if student_local.shape[1:] != student_global.shape[1:]:
                raise ValueError(
                    f"student_local {tuple(student_local.shape)} must share (B, K) with "
                    f"student_global {tuple(student_global.shape)}"
                )
            n_local = student_local.shape[0]
        n_pairs = dino_pair_count(n_global, n_local)
        if n_pairs == 0:
            raise ValueError(
                "DINO loss needs at least two global crops, or one global and one local"
            )

        targets = teacher_probs.detach().float()
        # sum over pairs of CE(t_j, s_v) = CE(sum_j t_j, s_v): one product per student view
        target_sum = targets.sum(dim=0)
        log_p = F.log_softmax(student_global.float() / self.student_temp, dim=-1)
        total = -((target_sum.unsqueeze(0) - targets) * log_p).sum(dim=-1).mean(dim=-1).sum()
        if n_local:
            log_p_local = F.log_softmax(student_local.float() / self.student_temp, dim=-1)
            total = total - (target_sum.unsqueeze(0) * log_p_local).sum(dim=-1).mean(dim=-1).sum()
        return total / n_pairs

    def _check_views(self, x: torch.Tensor, name: str) -> None:
        if x.ndim != 3 or x.shape[-1] != self.out_dim:
            raise ValueError(
                f"{name} must have shape (views, B, {self.out_dim}), got {tuple(x.shape)}"
            )

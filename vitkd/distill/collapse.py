"""Collapse watch for prototype training: embedding spread, prototype usage, target entropy."""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)


@torch.no_grad()
def collapse_stats(
    cls: torch.Tensor, student_logits: torch.Tensor, teacher_probs: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Three views of representation collapse, each 0-dim float tensors on the input device.

    - `cls_std`: standard deviation over the batch of the L2-normalised CLS embeddings, mean
      over dimensions, times sqrt(D). Isotropic embeddings give about 1, a collapse to one
      point gives 0 (the DINO paper's collapse diagnostic, rescaled to be width-free).
    - `prototypes_used`: distinct arg-max prototypes of the student over the rows, divided by
      min(rows, K): 1 when every row picks its own prototype, 1 / rows when all pick one
      (`prototypes_distinct` is the count itself).
    - `target_entropy`: mean entropy of the teacher targets divided by ln K: 1 when targets are
      uniform (the other collapse, where the loss sits at ln K), 0 for one-hot targets.

    Args:
        cls: (N, D) CLS embeddings (the teacher's for self-distillation).
        student_logits: (..., K) student prototype scores.
        teacher_probs: (..., K) teacher target probabilities.
    """
    x = F.normalize(cls.float(), dim=-1)
    spread = x.std(dim=0).mean() * math.sqrt(x.shape[-1]) if x.shape[0] > 1 else x.new_zeros(())
    logits = student_logits.reshape(-1, student_logits.shape[-1])
    rows, k = logits.shape
    # counted on the device: `torch.unique(...).numel()` would wait for the device every step
    picked = torch.zeros(k, dtype=torch.bool, device=logits.device)
    distinct = picked.index_fill_(0, logits.argmax(dim=-1), True).sum().float()
    p = teacher_probs.reshape(-1, teacher_probs.shape[-1]).float()
    entropy = -(p * torch.log(p.clamp_min(1e-12))).sum(-1).mean() / math.log(k)
    return {
        "cls_std": spread,
        "prototypes_used": distinct / max(1, min(rows, k)),
        "prototypes_distinct": distinct,
        "target_entropy": entropy,
    }


class CollapseMonitor:
    """Warns loudly when a run has collapsed, once per `every` steps at most.

    A run counts as collapsed when the CLS spread falls under `min_cls_std`, when all rows pick
    one prototype, or when the teacher targets are (nearly) uniform (`max_target_entropy`).

    Args:
        min_cls_std: lowest healthy `cls_std`.
        max_target_entropy: highest healthy `target_entropy`.
        every: steps between two warnings.
    """

    def __init__(
        self, min_cls_std: float = 0.05, max_target_entropy: float = 0.98, every: int = 50
    ) -> None:
        self.min_cls_std = min_cls_std
        self.max_target_entropy = max_target_entropy
        self.every = every
        self._last_warned: int | None = None

    def reasons(self, stats: dict[str, float]) -> list[str]:
        """What looks collapsed in `stats` (from `collapse_stats`, as floats); empty if healthy."""
        found = []
        if stats["cls_std"] < self.min_cls_std:
            found.append(f"CLS spread {stats['cls_std']:.3f} < {self.min_cls_std}")
        if stats["prototypes_distinct"] <= 1:
            found.append("every crop picks the same prototype")
        if stats["target_entropy"] > self.max_target_entropy:
            found.append(
                f"teacher targets nearly uniform (entropy {stats['target_entropy']:.3f} of ln K)"
            )
        return found

    def check(self, step: int, stats: dict[str, float]) -> list[str]:
        """Log a warning at `step` when collapsed (rate-limited); returns the reasons."""
        found = self.reasons(stats)
        if found and (self._last_warned is None or step - self._last_warned >= self.every):
            self._last_warned = step
            log.warning(
                "COLLAPSE at step %d: %s. The representation is not learning; lower "
                "optim.base_lr, raise losses.koleo, use fewer heads.prototypes, or check that "
                "the crops differ (data.crops.augment)",
                step,
                "; ".join(found),
            )
        return found

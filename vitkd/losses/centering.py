"""Teacher target centring: softmax centring with a lagged EMA centre, and Sinkhorn-Knopp.

References: Caron et al., "Emerging Properties in Self-Supervised Vision Transformers" (DINO, 2021)
for the centre; Caron et al., "Unsupervised Learning of Visual Features by Contrasting Cluster
Assignments" (SwAV, 2020) and Oquab et al., "DINOv2" (2023), ``dinov2/loss/dino_clstoken_loss.py``,
for Sinkhorn-Knopp. Both reduce over the global batch when torch.distributed is initialised.
"""

import math
from typing import Literal

import torch
from torch import nn

from vitkd.losses.distributed import all_reduce_sum, global_logsumexp

CenteringMode = Literal["softmax", "sinkhorn"]
CENTERING_MODES: tuple[str, ...] = ("softmax", "sinkhorn")


def check_centering_mode(mode: str) -> None:
    """Raise a ``ValueError`` naming ``mode`` and the valid choices unless it is one of them."""
    if mode not in CENTERING_MODES:
        raise ValueError(
            f"unknown centring mode {mode!r}: use one of {', '.join(map(repr, CENTERING_MODES))}"
        )


def _check_temperature(temp: float) -> None:
    if not temp > 0:
        raise ValueError(f"teacher temperature must be > 0, got {temp!r}")


class SoftmaxCenter(nn.Module):
    """Softmax centring ``softmax((t - c) / temp)`` with an EMA centre ``c`` of shape (1, K).

    Call order per step: :meth:`probs` (uses the centre of the previous steps; zero at the first
    step) and then :meth:`update`, which applies ``c <- m * c + (1 - m) * mean(t)`` with the mean
    taken over the global batch (summed and counted over ranks when distributed). The centre is a
    buffer, so it is saved in checkpoints and moves with the module.

    Under gradient accumulation the global batch spans several micro-batches: call
    :meth:`accumulate` after each micro-batch's :meth:`probs` and :meth:`step` once per optimiser
    step, so the centre moves once per step with the mean over all micro-batches, as one big
    batch would (DINOv2 updates it once per iteration). ``update`` is ``accumulate`` + ``step``.
    The pending sums are not saved: checkpoints are written between optimiser steps, where none
    are pending.
    """

    center: torch.Tensor

    def __init__(self, dim: int, momentum: float = 0.9) -> None:
        """Create a zero centre.

        Args:
            dim: number of prototypes K.
            momentum: EMA momentum m in [0, 1].
        """
        super().__init__()
        if dim < 1:
            raise ValueError(f"centre dimension must be >= 1, got {dim}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"centre momentum must be in [0, 1], got {momentum}")
        self.momentum = momentum
        self.register_buffer("center", torch.zeros(1, dim))
        # float32 (sum over rows of K scores, row count) of this rank since the last `step`
        self._pending: torch.Tensor | None = None

    @torch.no_grad()
    def probs(self, teacher_logits: torch.Tensor, temp: float) -> torch.Tensor:
        """Centred, sharpened teacher probabilities (..., K) in float32 from logits (..., K)."""
        _check_temperature(temp)
        centred = teacher_logits.detach().float() - self.center
        return torch.softmax(centred / temp, dim=-1)

    @torch.no_grad()
    def update(self, teacher_logits: torch.Tensor, valid: torch.Tensor | None = None) -> None:
        """EMA update of the centre with the global-batch mean of ``teacher_logits`` (..., K).

        Rows given to :meth:`accumulate` since the last :meth:`step` enter the same mean.

        Args:
            teacher_logits: teacher scores, any leading shape.
            valid: optional bool mask over the leading shape; only True rows enter the mean.
        """
        self.accumulate(teacher_logits, valid)
        self.step()

    @torch.no_grad()
    def accumulate(self, teacher_logits: torch.Tensor, valid: torch.Tensor | None = None) -> None:
        """Add this rank's row sum and row count of ``teacher_logits`` (..., K) to the pending
        statistics; no communication, no host-device sync, the centre is unchanged.

        Args:
            teacher_logits: teacher scores, any leading shape.
            valid: optional bool mask over the leading shape; only True rows are added.
        """
        dim = self.center.shape[-1]
        rows = teacher_logits.detach().float().reshape(-1, dim)
        if valid is None:
            weights = torch.ones(rows.shape[0], 1, device=rows.device)
        else:
            # a weight rather than boolean indexing: no host-device sync
            weights = valid.reshape(-1, 1).to(device=rows.device, dtype=rows.dtype)
        kept = torch.where(weights > 0, rows, torch.zeros_like(rows))  # padding may hold nan
        stats = torch.cat([(kept * weights).sum(dim=0), weights.sum().reshape(1)])
        self._pending = stats if self._pending is None else self._pending + stats

    @torch.no_grad()
    def step(self) -> None:
        """Apply ``c <- m * c + (1 - m) * mean`` with the mean of the pending rows over all ranks,
        then clear them. One all-reduce on every call, pending rows or not, so every rank runs
        the same collectives; with no row anywhere the centre stays as it is."""
        stats = self._pending
        self._pending = None
        if stats is None:
            stats = torch.zeros(self.center.shape[-1] + 1, device=self.center.device)
        # one all-reduce for the sum and the count: ranks may hold different numbers of rows
        all_reduce_sum(stats)
        count = stats[-1]
        batch_mean = (stats[:-1] / count.clamp(min=1.0)).unsqueeze(0)
        updated = self.center * self.momentum + batch_mean * (1.0 - self.momentum)
        # no .item(): an empty global batch keeps the centre without a host-device sync
        self.center.copy_(torch.where(count > 0, updated, self.center))


class PrototypeLoss(nn.Module):
    """What the DINO and iBOT losses share: K prototypes, a student temperature and a lagged
    softmax centre of their own.

    Args:
        out_dim: number of prototypes K.
        student_temp: student softmax temperature.
        center_momentum: EMA momentum of the softmax centre.
    """

    def __init__(
        self, out_dim: int, student_temp: float = 0.1, center_momentum: float = 0.9
    ) -> None:
        super().__init__()
        if not student_temp > 0:
            raise ValueError(f"student_temp must be > 0, got {student_temp}")
        self.out_dim = out_dim
        self.student_temp = student_temp
        self.center = SoftmaxCenter(out_dim, center_momentum)


@torch.no_grad()
def sinkhorn_knopp(
    teacher_logits: torch.Tensor,
    temp: float,
    n_iterations: int = 3,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Sinkhorn-Knopp teacher assignments over the global batch (DINOv2 / SwAV semantics).

    Same result as the reference ``Q = exp(t / temp)``; ``Q /= Q.sum()``; ``n_iterations`` x
    (prototype rows to 1/K, sample columns to 1/B); ``Q *= B``; but computed in the log domain in
    float32, so it neither overflows (the reference does at temp 0.04 in fp32, and at far smaller
    logits in fp16/bf16) nor turns a sample into 0/0 by underflow. Every returned row sums to 1;
    each prototype's total over the global batch approaches B/K as the iterations grow.

    Args:
        teacher_logits: teacher scores (N, K), any float dtype.
        temp: teacher temperature (> 0).
        n_iterations: number of row/column normalisation rounds.
        valid: optional bool (N,) marking the rows that take part (e.g. the real masked tokens
            of a padded iBOT buffer, like dinov2's ``n_masked_patches_tensor``); other rows are
            excluded from every sum and come back as zeros. B counts the valid rows on all ranks.

    Returns:
        float32 assignments (N, K).
    """
    _check_temperature(temp)
    if teacher_logits.ndim != 2:
        raise ValueError(
            f"sinkhorn_knopp expects logits (N, K), got shape {tuple(teacher_logits.shape)}"
        )
    if n_iterations < 0:
        raise ValueError(f"n_iterations must be >= 0, got {n_iterations}")
    n_rows, n_protos = teacher_logits.shape
    log_q = teacher_logits.detach().float() / temp
    if valid is None:
        valid = torch.ones(n_rows, dtype=torch.bool, device=log_q.device)
    elif valid.shape != (n_rows,):
        raise ValueError(f"valid must have shape ({n_rows},), got {tuple(valid.shape)}")
    valid = valid.to(device=log_q.device, dtype=torch.bool)
    log_q = log_q.masked_fill(~valid[:, None], float("-inf"))
    n_global = all_reduce_sum(valid.sum().to(torch.float32).reshape(1))
    log_b = torch.log(n_global.clamp(min=1.0))
    log_k = math.log(n_protos)
    valid_col = valid[:, None]

    # Q /= sum(Q): only matters for n_iterations == 0, kept so every count matches the reference
    log_q = log_q - global_logsumexp(torch.logsumexp(log_q, dim=1), dim=0)
    for _ in range(n_iterations):
        # each prototype (column here, a row in the paper's K x B notation) sums to 1/K
        log_q = log_q - global_logsumexp(log_q, dim=0).unsqueeze(0) - log_k
        # each sample sums to 1/B; excluded rows stay at -inf
        row_lse = torch.logsumexp(log_q, dim=1, keepdim=True)
        log_q = log_q - torch.where(valid_col, row_lse, torch.zeros_like(row_lse)) - log_b
    # with no valid row anywhere the sums above are 0/0: such rows are zeros by definition
    return torch.where(valid_col, torch.exp(log_q + log_b), torch.zeros_like(log_q))

"""All-reduce helpers that fall back to the identity when torch.distributed is not initialised."""

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    """True when a torch.distributed process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over ranks in place (identity without a process group) and return it."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_reduce_max(tensor: torch.Tensor) -> torch.Tensor:
    """Element-wise maximum of ``tensor`` over ranks in place (identity without a process group)."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor


def global_logsumexp(x: torch.Tensor, dim: int) -> torch.Tensor:
    """``logsumexp`` along ``dim`` where ``dim`` is split across ranks (the global batch).

    Overflow-safe: the all-reduced maximum is subtracted before ``exp``. Slices that are ``-inf``
    on every rank give ``-inf``.
    """
    peak = all_reduce_max(x.amax(dim=dim, keepdim=True).detach().clone())
    # a slice that is -inf everywhere would give (-inf) - (-inf) = nan below
    safe_peak = torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak))
    total = all_reduce_sum(torch.exp(x - safe_peak).sum(dim=dim, keepdim=True))
    return (torch.log(total) + safe_peak).squeeze(dim)

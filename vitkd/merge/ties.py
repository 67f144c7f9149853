"""TIES-Merging: trim task vectors, elect a sign per parameter, average the agreeing values."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from vitkd.merge.task_arithmetic import task_vectors


def _flat(tau: Mapping[str, Tensor]) -> Tensor:
    return torch.cat([v.reshape(-1) for v in tau.values()])


def _unflat(flat: Tensor, like: Mapping[str, Tensor]) -> dict[str, Tensor]:
    out, start = {}, 0
    for key, value in like.items():
        out[key] = flat[start : start + value.numel()].reshape(value.shape)
        start += value.numel()
    return out


def trim(tau: Mapping[str, Tensor], keep: float) -> dict[str, Tensor]:
    """Zero all but the `keep` fraction of largest-magnitude entries of one task vector.

    The ranking is over the whole vector (every tensor together), as in TIES; it keeps
    `max(1, int(keep * n))` of its n entries.

    Args:
        tau: one task vector (key -> tensor).
        keep: fraction kept, in (0, 1] (TIES' k, 0.2 by default there).
    """
    if not 0 < keep <= 1:
        raise ValueError(f"keep={keep}: the fraction of each task vector kept must be in (0, 1]")
    flat = _flat(tau)
    count = max(1, int(keep * flat.numel()))
    mask = torch.zeros_like(flat, dtype=torch.bool)
    mask[flat.abs().topk(count, sorted=False).indices] = True
    return _unflat(flat * mask, tau)


def elect_sign(trimmed: Sequence[Mapping[str, Tensor]]) -> dict[str, Tensor]:
    """gamma = sign(sum_i tau_i) per parameter (the sign of the larger total mass).

    Where the sum is exactly 0 the sign of the whole vector's majority is used, as the TIES
    reference implementation does, so every parameter has a sign of +1 or -1.
    """
    total = {k: torch.stack([t[k] for t in trimmed]).sum(0) for k in trimmed[0]}
    signs = {k: torch.sign(v) for k, v in total.items()}
    majority = torch.sign(sum(s.sum() for s in signs.values()))
    majority = majority if majority != 0 else torch.tensor(1.0)
    return {k: torch.where(s == 0, majority, s) for k, s in signs.items()}


def disjoint_mean(
    trimmed: Sequence[Mapping[str, Tensor]], signs: Mapping[str, Tensor]
) -> dict[str, Tensor]:
    """Per parameter, the mean of the non-zero trimmed values whose sign is the elected one
    (0 where none agrees)."""
    out = {}
    for key, sign in signs.items():
        values = torch.stack([t[key] for t in trimmed])
        agree = (torch.sign(values) == sign) & (values != 0)
        count = agree.sum(0).clamp(min=1)
        out[key] = (values * agree).sum(0) / count
    return out


def ties_merge(
    states: Sequence[Mapping[str, Tensor]],
    base: Mapping[str, Tensor],
    keep: float = 0.2,
    scale: float = 1.0,
) -> dict[str, Tensor]:
    """theta = theta_0 + lambda * disjoint_mean(trim(tau_i), elect_sign(trim(tau_i))).

    Yadav et al. 2023, "TIES-Merging: Resolving interference when merging models",
    https://arxiv.org/abs/2306.01708: trimming drops the small, redundant updates, and the
    sign election keeps opposite updates of two models from cancelling each other.

    Args:
        states: the n models, all trained from `base`.
        base: the shared initialisation theta_0.
        keep: fraction of each task vector kept by magnitude (the paper's k = 20 %).
        scale: lambda (the paper's default without validation data is 1).
    """
    trimmed = [trim(tau, keep) for tau in task_vectors(states, base)]
    merged = disjoint_mean(trimmed, elect_sign(trimmed))
    return {k: base[k].float() + scale * merged[k] for k in base}

"""Task arithmetic: add the scaled sum of task vectors to the shared initialisation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor


def task_vectors(
    states: Sequence[Mapping[str, Tensor]], base: Mapping[str, Tensor]
) -> list[dict[str, Tensor]]:
    """tau_i = theta_i - theta_0 for each model, key by key, in fp32."""
    return [{k: s[k].float() - base[k].float() for k in base} for s in states]


def task_arithmetic(
    states: Sequence[Mapping[str, Tensor]], base: Mapping[str, Tensor], scale: float = 1.0
) -> dict[str, Tensor]:
    """theta = theta_0 + lambda * sum_i (theta_i - theta_0).

    Ilharco et al. 2023, "Editing models with task arithmetic",
    https://arxiv.org/abs/2212.04089 (task addition). With lambda = 1 / n this is averaging.

    Args:
        states: the n models, all trained from `base`.
        base: the shared initialisation theta_0.
        scale: lambda.
    """
    taus = task_vectors(states, base)
    return {k: base[k].float() + scale * torch.stack([t[k] for t in taus]).sum(0) for k in base}

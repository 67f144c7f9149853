"""Uniform weight averaging of models fine-tuned from one initialisation ("model soups")."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor


def average(states: Sequence[Mapping[str, Tensor]]) -> dict[str, Tensor]:
    """theta = (1 / n) sum_i theta_i, key by key, in fp32.

    Averaging works when the models share one initialisation and stay in one basin of the loss
    (Wortsman et al. 2022, model soups, https://arxiv.org/abs/2203.05482).

    Args:
        states: n >= 1 state dicts with the same keys and shapes (`check_compatible`).
    """
    return {key: torch.stack([s[key].float() for s in states]).mean(dim=0) for key in states[0]}

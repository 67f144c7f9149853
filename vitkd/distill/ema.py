"""Exponential moving average ("shadow") of the student, kept as the final model."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def ema_update(shadow: nn.Module, online: nn.Module, momentum: float) -> None:
    """`shadow <- momentum * shadow + (1 - momentum) * online`, parameter by parameter.

    Buffers are copied, since they are not trained (e.g. position-embedding caches).
    """
    shadow_params = list(shadow.parameters())
    online_params = [p.detach() for p in online.parameters()]
    if len(shadow_params) != len(online_params):
        raise ValueError("EMA shadow and student have different parameter lists")
    torch._foreach_mul_(shadow_params, momentum)
    torch._foreach_add_(shadow_params, online_params, alpha=1.0 - momentum)
    for s_buf, o_buf in zip(shadow.buffers(), online.buffers(), strict=True):
        s_buf.copy_(o_buf)

"""Weights fingerprint: the float64 probe sum checked on resume and by the feature cache."""

from __future__ import annotations

import torch
from torch import nn

# relative tolerance of two fingerprints of the same weights (summation order aside)
FINGERPRINT_RTOL = 1e-6


def teacher_fingerprint(teacher: nn.Module) -> float:
    """A cheap, order-dependent checksum of a teacher's weights.

    Every 1/64th element of each parameter, in float64, times the parameter's rank, summed;
    equal weights give equal sums on any device. Take it in fp32 (before any bf16 cast), as
    `DistillationModule` does for its resume check and `vitkd.cache` for its manifest.
    """
    total = torch.zeros((), dtype=torch.float64)
    for i, p in enumerate(teacher.parameters()):
        flat = p.detach().reshape(-1)
        total += (flat[:: max(1, flat.numel() // 64)].double().cpu() * (i + 1)).sum()
    return float(total)


def same_fingerprint(a: float, b: float) -> bool:
    """Whether two fingerprints are of the same weights (the module's resume tolerance)."""
    return abs(a - b) <= FINGERPRINT_RTOL * (1 + abs(a))

"""Training schedules as pure functions of the step (DINOv2 recipe)."""

from __future__ import annotations

import math


def scaled_lr(base_lr: float, global_batch: int, reference_batch: int = 1024) -> float:
    """Square-root learning-rate scaling: `base_lr * sqrt(global_batch / reference_batch)`."""
    return base_lr * math.sqrt(global_batch / reference_batch)


def cosine(step: int, total: int, start: float, end: float) -> float:
    """Cosine interpolation from `start` (step 0) to `end` (step `total`), then constant."""
    if total <= 0 or step >= total:
        return end
    return end + 0.5 * (start - end) * (1.0 + math.cos(math.pi * step / total))


def warmup_cosine(step: int, total: int, peak: float, end: float, warmup: int) -> float:
    """Linear warm-up from 0 to `peak` over `warmup` steps, then cosine to `end` at `total`."""
    if step < warmup:
        return peak * step / warmup
    return cosine(step - warmup, total - warmup, peak, end)


def linear_warmup(step: int, warmup: int, start: float, end: float) -> float:
    """Linear ramp from `start` to `end` over `warmup` steps, then constant `end`."""
    if warmup <= 0 or step >= warmup:
        return end
    return start + (end - start) * step / warmup


def ramp(
    step: int,
    total: int,
    kind: str,
    start: float,
    end: float,
    begin: float = 0.0,
    stop: float = 1.0,
) -> float:
    """`start` until `round(begin * total)`, then `kind` (constant, linear, cosine) to `end`
    at `round(stop * total)`, then constant `end`.

    Works both ways (`start > end` anneals, `start < end` warms up). The linear branch is the
    formula of `linear_warmup`, so `ramp(s, t, "linear", a, b, 0, f)` equals
    `linear_warmup(s, round(f * t), a, b)` bit for bit.
    """
    if kind == "constant":
        return start
    first, last = round(begin * total), round(stop * total)
    if step >= last:
        return end
    if step <= first:
        return start
    span = last - first
    if kind == "linear":
        return start + (end - start) * (step - first) / span
    if kind == "cosine":
        return cosine(step - first, span, start, end)
    raise ValueError(f"unknown schedule kind {kind!r}: choose 'constant', 'linear' or 'cosine'")

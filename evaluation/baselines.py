"""Feature baselines that need no network: what a probe gets from colour alone."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def colour_histogram(images: Iterable[np.ndarray], bins: int = 16) -> np.ndarray:
    """(N, 3 * bins) per-channel RGB histograms of uint8 (H, W, 3) images, each summing to 1
    per channel: the baseline a pathology encoder must beat (stain and tissue colour)."""
    rows = []
    for img in images:
        levels = img.astype(np.int64) * bins // 256
        hist = [np.bincount(levels[..., c].ravel(), minlength=bins) for c in range(3)]
        rows.append(np.concatenate(hist).astype(np.float32) / (img.shape[0] * img.shape[1]))
    if not rows:
        raise ValueError("no images for the colour histogram baseline")
    return np.stack(rows)

"""Crop geometry: RandomResizedCrop boxes (torchvision's sampler) with MPP jitter, bicubic resize."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class CropBox:
    """A crop of the source image: top-left (x, y), size (w, h) in source pixels, and a flip."""

    x: int
    y: int
    w: int
    h: int
    flip: bool


def sample_box(
    height: int,
    width: int,
    scale: tuple[float, float],
    rng: np.random.Generator,
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    mpp_jitter: float = 0.0,
    flip_p: float = 0.5,
) -> CropBox:
    """Sample a RandomResizedCrop box the way torchvision does, then jitter its side length.

    Ten tries at an area fraction ``U(scale)`` and log-uniform aspect ratio; if none fits, a
    centre crop clamped to ``ratio``. The MPP jitter multiplies both sides by ``U(1 +- j)``
    (clamped to the image) about the box centre, i.e. the microns per output pixel vary by up
    to ``j``. The same number of random draws is made whatever the outcome, so the stream of
    later draws does not depend on the image size.
    """
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    tries_area = rng.uniform(scale[0], scale[1], size=10) * area
    tries_ratio = np.exp(rng.uniform(log_ratio[0], log_ratio[1], size=10))
    pos = rng.random(2)
    jitter = rng.uniform(1 - mpp_jitter, 1 + mpp_jitter)
    flip = bool(rng.random() < flip_p)
    w = h = 0
    for a, r in zip(tries_area, tries_ratio, strict=True):
        w = round(math.sqrt(a * r))
        h = round(math.sqrt(a / r))
        if 0 < w <= width and 0 < h <= height:
            break
    else:
        in_ratio = width / height
        if in_ratio < ratio[0]:
            w, h = width, round(width / ratio[0])
        elif in_ratio > ratio[1]:
            h, w = height, round(height * ratio[1])
        else:
            w, h = width, height
    x = pos[0] * (width - w)
    y = pos[1] * (height - h)
    if mpp_jitter > 0:
        cx, cy = x + w / 2, y + h / 2
        w = min(width, max(1, round(w * jitter)))
        h = min(height, max(1, round(h * jitter)))
        x = min(max(cx - w / 2, 0), width - w)
        y = min(max(cy - h / 2, 0), height - h)
    return CropBox(round(float(x)), round(float(y)), int(w), int(h), flip)


def crop_resize(image: np.ndarray, box: CropBox, size: int) -> np.ndarray:
    """Cut ``box`` out of ``image``, resize it to ``size`` x ``size`` bicubically, flip if asked."""
    region = image[box.y : box.y + box.h, box.x : box.x + box.w]
    # Bicubic as the reference; area averaging only when shrinking by 2x or more, where bicubic
    # would alias (PIL's bicubic is antialiased) and area's cost (~1 ms) is worth paying.
    interp = cv2.INTER_AREA if min(box.w, box.h) >= 2 * size else cv2.INTER_CUBIC
    out = cv2.resize(region, (size, size), interpolation=interp)
    if box.flip:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)

"""The DINOv2 reference colour family: ColorJitter, grayscale, Gaussian blur, solarisation.

Semantics of dinov2's ``DataAugmentationDINO`` (torchvision ops), with the blur probabilities
taken per view from `ColorConfig.blur_p` (see its docstring for the reference's inversion).
"""

from __future__ import annotations

import cv2
import numpy as np
from albumentations.augmentations.pixel import functional as apf

from vitkd.data.augment.presets import VIEWS, ColorConfig


def color_jitter(
    image: np.ndarray,
    brightness: float,
    contrast: float,
    saturation: float,
    hue: float,
    order: np.ndarray,
) -> np.ndarray:
    """torchvision ColorJitter with explicit factors, applied in ``order`` (a permutation of 0..3).

    Args:
        brightness: multiplicative factor (1 = unchanged).
        contrast: blend factor with the mean grey (1 = unchanged).
        saturation: blend factor with the grayscale image (1 = unchanged).
        hue: hue shift in turns, in [-0.5, 0.5].
    """
    out = image
    for op in order:
        if op == 0:
            out = apf.adjust_brightness_torchvision(out, brightness)
        elif op == 1:
            out = apf.adjust_contrast_torchvision(out, contrast)
        elif op == 2:
            out = apf.adjust_saturation_torchvision(out, saturation)
        else:
            out = apf.adjust_hue_torchvision(out, hue)
    return out


def grayscale(image: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma replicated to three channels (torchvision Grayscale(3))."""
    return cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)


def solarize(image: np.ndarray, threshold: int = 128) -> np.ndarray:
    """Invert every value >= ``threshold`` (PIL ImageOps.solarize)."""
    lut = np.arange(256, dtype=np.uint8)
    lut[threshold:] = 255 - lut[threshold:]
    return cv2.LUT(image, lut)


class ColorAugment:
    """Random DINOv2 colour augmentation of one crop; ``view`` picks the blur/solarize chance."""

    def __init__(self, config: ColorConfig) -> None:
        self.config = config

    @property
    def enabled(self) -> bool:
        """Whether any colour operation has a non-zero probability."""
        c = self.config
        return c.jitter_p > 0 or c.grayscale_p > 0 or any(c.blur_p) or any(c.solarize_p)

    def jitter_and_gray(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """ColorJitter (with probability ``jitter_p``) then grayscale (``grayscale_p``)."""
        c = self.config
        out = image
        if rng.random() < c.jitter_p:
            out = color_jitter(
                out,
                rng.uniform(max(0.0, 1 - c.brightness), 1 + c.brightness),
                rng.uniform(max(0.0, 1 - c.contrast), 1 + c.contrast),
                rng.uniform(max(0.0, 1 - c.saturation), 1 + c.saturation),
                rng.uniform(-c.hue, c.hue),
                rng.permutation(4),
            )
        if rng.random() < c.grayscale_p:
            out = grayscale(out)
        return out

    def blur(self, image: np.ndarray, rng: np.random.Generator, view: str) -> np.ndarray:
        """Gaussian blur, 9x9 kernel, sigma in ``blur_sigma``, with the view's probability."""
        if rng.random() < self.config.blur_p[VIEWS.index(view)]:
            s = rng.uniform(*self.config.blur_sigma)
            return cv2.GaussianBlur(image, (9, 9), sigmaX=s, sigmaY=s)
        return image

    def solarize(self, image: np.ndarray, rng: np.random.Generator, view: str) -> np.ndarray:
        """Solarisation with the view's probability."""
        if rng.random() < self.config.solarize_p[VIEWS.index(view)]:
            return solarize(image)
        return image

"""One crop's photometric augmentation: stain, then DINOv2 colour, then scanner families."""

from __future__ import annotations

import numpy as np

from vitkd.data.augment.color import ColorAugment
from vitkd.data.augment.presets import VIEWS, AugmentConfig, AugmentConfigError, resolve_augment
from vitkd.data.augment.scanner import ScannerAugment
from vitkd.data.augment.stain import StainAugment


class CropAugmenter:
    """Applies an `AugmentConfig` to one crop; all randomness comes from the ``rng`` passed in.

    Order: stain family -> ColorJitter/grayscale -> optical blur of the colour family ->
    scanner family -> solarisation. With the same ``rng`` state the output is identical.
    """

    def __init__(self, augment: str | AugmentConfig) -> None:
        self.config = resolve_augment(augment)
        self.stain = StainAugment(self.config.stain)
        self.color = ColorAugment(self.config.color)
        self.scanner = ScannerAugment(self.config.scanner)
        self._stain_on = self.stain.enabled
        self._color_on = self.color.enabled
        self._scanner_on = self.scanner.enabled

    @property
    def needs_stain_matrix(self) -> bool:
        """Whether a caller should pass the source image's Macenko matrix (saves estimates)."""
        return self._stain_on and self.stain.needs_stain_matrix

    def __call__(
        self,
        image: np.ndarray,
        rng: np.random.Generator,
        view: str = "global1",
        stain_matrix: np.ndarray | None = None,
    ) -> np.ndarray:
        """Augment one uint8 RGB crop.

        Args:
            image: uint8 (H, W, 3) crop, already at its final size.
            rng: source of every random draw.
            view: ``"global1"``, ``"global2"`` or ``"local"`` (per-view blur/solarize chances).
            stain_matrix: (2, 3) Macenko matrix of the source image; estimated on the crop if
                None and needed.
        """
        if view not in VIEWS:
            raise AugmentConfigError(f"view={view!r} is not one of {VIEWS}")
        out = image
        if self._stain_on:
            out = self.stain(out, rng, stain_matrix)
        if self._color_on:
            out = self.color.jitter_and_gray(out, rng)
            out = self.color.blur(out, rng, view)
        if self._scanner_on:
            out = self.scanner(out, rng)
        if self._color_on:
            out = self.color.solarize(out, rng, view)
        return out

"""Tissue detection: Otsu on saturation of a thumbnail, cleaned of specks and small holes."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy import ndimage
from skimage.filters import threshold_otsu

from slides.slide import Slide


@dataclass
class TissueMask:
    """Boolean tissue mask of a slide at a coarse scale.

    Attributes:
        mask: (h, w) bool, True on tissue.
        downsample_xy: level-0 pixels per mask pixel along x and y.
        threshold: saturation threshold used (0-255).
    """

    mask: np.ndarray
    downsample_xy: tuple[float, float]
    threshold: float = 0.0
    _integral: np.ndarray | None = field(default=None, init=False, repr=False)

    @property
    def downsample(self) -> float:
        """Level-0 pixels per mask pixel (mean of x and y)."""
        return (self.downsample_xy[0] + self.downsample_xy[1]) / 2.0

    @property
    def area_fraction(self) -> float:
        """Fraction of the slide covered by tissue."""
        return float(self.mask.mean()) if self.mask.size else 0.0

    @property
    def tissue_area_level0(self) -> float:
        """Tissue area in level-0 pixels squared."""
        return float(self.mask.sum()) * self.downsample_xy[0] * self.downsample_xy[1]

    def _summed_area(self) -> np.ndarray:
        """Summed-area table with a zero first row and column."""
        if self._integral is None:
            integral = np.zeros((self.mask.shape[0] + 1, self.mask.shape[1] + 1), np.float64)
            integral[1:, 1:] = self.mask.cumsum(0, dtype=np.float64).cumsum(1)
            self._integral = integral
        return self._integral

    def _area_below(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Tissue area (mask px) in [0, u) x [0, v); exact for fractional u, v."""
        integral = self._summed_area()
        height, width = self.mask.shape
        u, v = np.clip(u, 0, width), np.clip(v, 0, height)
        j0 = np.minimum(np.floor(u).astype(np.int64), max(width - 1, 0))
        i0 = np.minimum(np.floor(v).astype(np.int64), max(height - 1, 0))
        fu, fv = u - j0, v - i0
        # The integral of a piecewise-constant mask is bilinear inside each cell.
        return (
            integral[i0, j0] * (1 - fu) * (1 - fv)
            + integral[i0, j0 + 1] * fu * (1 - fv)
            + integral[i0 + 1, j0] * (1 - fu) * fv
            + integral[i0 + 1, j0 + 1] * fu * fv
        )

    def fractions(self, coords: np.ndarray, width: float, height: float) -> np.ndarray:
        """Tissue fraction of each level-0 box (x, y, width, height); outside counts as none.

        Args:
            coords: (N, 2) level-0 top-left corners.
            width: box width in level-0 pixels.
            height: box height in level-0 pixels.
        """
        coords = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
        if self.mask.size == 0 or len(coords) == 0:
            return np.zeros(len(coords))
        dsx, dsy = self.downsample_xy
        u0, v0 = coords[:, 0] / dsx, coords[:, 1] / dsy
        u1, v1 = u0 + width / dsx, v0 + height / dsy
        area = (
            self._area_below(u1, v1)
            - self._area_below(u0, v1)
            - self._area_below(u1, v0)
            + self._area_below(u0, v0)
        )
        return np.clip(area / ((width / dsx) * (height / dsy)), 0.0, 1.0)

    def fraction(self, x: float, y: float, w: float, h: float) -> float:
        """Tissue fraction of one level-0 box."""
        return float(self.fractions(np.array([[x, y]]), w, h)[0])


def _saturation(rgb: np.ndarray, min_value: int) -> np.ndarray:
    """HSV saturation (0-255 uint8); near-black pixels get 0 (scanner borders, not tissue)."""
    high = rgb.max(axis=2).astype(np.int32)
    low = rgb.min(axis=2).astype(np.int32)
    sat = np.where(high > 0, (high - low) * 255 // np.maximum(high, 1), 0)
    sat[high < min_value] = 0
    return sat.astype(np.uint8)


def median5(image: np.ndarray) -> np.ndarray:
    """5 x 5 median of a uint8 image, equal to ``ndimage.median_filter(image, size=5)`` everywhere.

    cv2.medianBlur is ~250x faster (6 ms vs 1.5 s on a 2048 x 1500 thumbnail) but replicates the
    border where ndimage reflects it; padding by reflection first and cropping makes them equal.
    """
    padded = cv2.copyMakeBorder(image, 2, 2, 2, 2, cv2.BORDER_REFLECT)
    return cv2.medianBlur(padded, 5)[2:-2, 2:-2]


def _remove_small(mask: np.ndarray, min_size: float) -> np.ndarray:
    """Drop connected components smaller than min_size pixels."""
    labels, count = ndimage.label(mask)
    if count == 0:
        return mask
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_size
    keep[0] = False
    return keep[labels]


def _fill_small_holes(mask: np.ndarray, max_size: float) -> np.ndarray:
    """Fill background components not touching the border and smaller than max_size."""
    labels, count = ndimage.label(~mask)
    if count == 0:
        return mask
    sizes = np.bincount(labels.ravel())
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    fill = sizes < max_size
    fill[0] = False
    fill[border] = False
    return mask | fill[labels]


def detect_tissue(
    slide: Slide,
    mask_mpp: float = 8.0,
    max_side: int = 2048,
    min_saturation: float = 0.06,
    min_object_um2: float = 1e4,
    max_hole_um2: float = 1e4,
) -> TissueMask:
    """Find tissue on a thumbnail: Otsu threshold on saturation, then clean-up.

    Args:
        slide: an open slide.
        mask_mpp: target microns per mask pixel; a slide without MPP gets a 16x downsample.
        max_side: the mask's longest side is at most this many pixels.
        min_saturation: floor for the Otsu threshold (0-1), so a blank slide gives no tissue.
        min_object_um2: tissue specks smaller than this area are dropped.
        max_hole_um2: holes in tissue smaller than this area are filled.
    """
    width0, height0 = slide.dimensions
    level0_mpp = slide.mpp if slide.has_mpp else mask_mpp / 16.0
    downsample = mask_mpp / level0_mpp
    downsample = max(downsample, max(width0, height0) / max_side, 1.0)
    downsample = min(downsample, max(max(width0, height0) / 64.0, 1.0))
    thumb = slide.get_thumbnail((math.ceil(width0 / downsample), math.ceil(height0 / downsample)))
    dsx, dsy = width0 / thumb.shape[1], height0 / thumb.shape[0]
    sat = median5(_saturation(thumb, min_value=30))
    floor = min_saturation * 255.0
    otsu = float(threshold_otsu(sat)) if sat.max() > sat.min() else floor
    threshold = max(otsu, floor)
    mask = sat > threshold
    pixel_um2 = dsx * dsy * level0_mpp * level0_mpp
    mask = _remove_small(mask, min_object_um2 / pixel_um2)
    mask = _fill_small_holes(mask, max_hole_um2 / pixel_um2)
    return TissueMask(mask=mask, downsample_xy=(dsx, dsy), threshold=threshold)

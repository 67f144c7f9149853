"""Stain family: H&E stain-matrix swaps and perturbations, HED jitter, tone and colour temperature.

Every stain-matrix operation is an affine map in optical-density (OD) space, so any chain of them
folds into one 3x3 matrix and one offset applied in a single pass (`apply_od_affine`). The
per-channel tone operations (Planckian white balance, gamma, brightness, contrast) fold into one
256-entry lookup table per channel (`apply_channel_lut`). The functions here are pure (all
randomness lives in `StainAugment`), so a GPU port can reuse the same parameterisation.
"""

from __future__ import annotations

import cv2
import numpy as np
from albumentations.augmentations.pixel.functional import PLANCKIAN_COEFFS, STAIN_MATRICES

from vitkd.data.augment.macenko import OD_LUT, REFERENCE_STAIN_MATRIX, estimate_stain_matrix
from vitkd.data.augment.presets import StainConfig

# albumentations' H&E presets, rows normalised to unit OD vectors.
STAIN_PRESETS: dict[str, np.ndarray] = {
    name: (m / np.linalg.norm(m, axis=1, keepdims=True)).astype(np.float32)
    for name, m in STAIN_MATRICES.items()
}

# Ruifrok & Johnston hematoxylin / eosin / DAB matrix (rows are unit OD vectors), as in
# skimage.color.rgb_from_hed; the basis of the HED jitter of Tellez et al. (2018).
HED_MATRIX = np.array(
    [[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]], dtype=np.float64
)
HED_MATRIX /= np.linalg.norm(HED_MATRIX, axis=1, keepdims=True)
_HED_INV = np.linalg.inv(HED_MATRIX)

# -log(256): the largest OD a uint8 pixel can have (value 0), negated.
_MIN_NEG_OD = np.float32(-np.log(256.0))

# Colour temperature that leaves the image unchanged (albumentations' "cied" table is neutral here).
NEUTRAL_TEMPERATURE = 6500


def identity_affine() -> tuple[np.ndarray, np.ndarray]:
    """The OD-space identity: (3x3 matrix, 3-vector offset)."""
    return np.eye(3), np.zeros(3)


def compose_affine(
    first: tuple[np.ndarray, np.ndarray], then: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """The single affine equal to applying ``first`` then ``then`` to OD row vectors."""
    a1, b1 = first
    a2, b2 = then
    return a1 @ a2, b1 @ a2 + b2


def stain_swap_affine(
    source: np.ndarray,
    target: np.ndarray,
    scale: tuple[float, float] | np.ndarray = (1.0, 1.0),
) -> tuple[np.ndarray, np.ndarray]:
    """Re-stain: unmix with ``source`` H&E vectors, scale the concentrations, remix with ``target``.

    The part of the OD not explained by the two source stains (residual) is kept unchanged, so
    pigments and DAB are not lost.

    Args:
        source: (2, 3) stain matrix of the image (e.g. `estimate_stain_matrix`).
        target: (2, 3) stain matrix to re-stain with.
        scale: multiplicative factors on the H and E concentrations.
    """
    src = np.asarray(source, dtype=np.float64)
    # Pseudo-inverse of a full-rank (2, 3) matrix, (3, 2): concentrations = od @ unmix.
    unmix = src.T @ np.linalg.inv(src @ src.T)
    residual = np.eye(3) - unmix @ src
    matrix = unmix @ np.diag(np.asarray(scale, dtype=np.float64)) @ target + residual
    return matrix, np.zeros(3)


def hed_jitter_affine(alpha: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """HED jitter: concentrations ``c' = c * alpha + beta`` in the H, E, DAB basis."""
    return _HED_INV @ np.diag(alpha) @ HED_MATRIX, np.asarray(beta, dtype=np.float64) @ HED_MATRIX


def perturb_stain_matrix(stains: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Jitter each stain vector by isotropic Gaussian noise of std ``sigma``, kept unit and >= 0."""
    noisy = np.clip(stains + rng.normal(0.0, sigma, size=stains.shape), 1e-3, None)
    return noisy / np.linalg.norm(noisy, axis=1, keepdims=True)


def apply_od_affine(image: np.ndarray, matrix: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Apply ``od' = od @ matrix + offset`` to a uint8 RGB image and return uint8 RGB."""
    od = cv2.LUT(image, OD_LUT)
    # cv2.transform maps column vectors; negating here makes exp() give the transmittance.
    m = np.hstack([-np.asarray(matrix).T, -np.asarray(offset).reshape(3, 1)]).astype(np.float32)
    neg = cv2.transform(od, m)
    np.maximum(neg, _MIN_NEG_OD, out=neg)  # keep 256 * exp(-od) - 1 >= 0 before rounding
    # I = 256 exp(-od) - 1, rounded and saturated to uint8 (the inverse of OD_LUT).
    return cv2.convertScaleAbs(cv2.exp(neg), alpha=256.0, beta=-1.0)


def planckian_gains(temperature: float) -> np.ndarray:
    """Per-channel RGB gains of a light source at ``temperature`` kelvin, neutral at 6500 K."""
    table = PLANCKIAN_COEFFS["cied"]
    temps = np.array(sorted(table), dtype=np.float64)
    coeffs = np.array([table[t] for t in sorted(table)], dtype=np.float64)
    t = float(np.clip(temperature, temps[0], temps[-1]))
    rgb = np.array([np.interp(t, temps, coeffs[:, c]) for c in range(3)])
    ref = np.array(table[NEUTRAL_TEMPERATURE], dtype=np.float64)
    return (rgb / rgb[1]) / (ref / ref[1])


def tone_lut(
    gains: np.ndarray | None = None,
    gamma: float = 1.0,
    brightness: float = 0.0,
    contrast: float = 1.0,
    pivot: float = 0.5,
) -> np.ndarray:
    """A (1, 256, 3) uint8 LUT: channel gains, then gamma, then contrast about ``pivot`` + brightness.

    Values are in [0, 1] units; ``brightness`` is additive, ``contrast`` multiplies the distance
    to ``pivot``.
    """
    x = np.arange(256, dtype=np.float64)[:, None] / 255.0
    g = np.ones(3) if gains is None else np.asarray(gains, dtype=np.float64)
    y = np.clip(x * g[None, :], 0.0, 1.0) ** gamma
    y = (y - pivot) * contrast + pivot + brightness
    return np.clip(np.rint(y * 255.0), 0, 255).astype(np.uint8)[None]


def apply_channel_lut(image: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Apply a (1, 256, 3) per-channel lookup table to a uint8 RGB image."""
    return cv2.LUT(image, lut)


# RGB <-> YIQ: hue is the angle of (I, Q), saturation their length, so a hue rotation and a
# saturation scale are one linear RGB map, applied to uint8 pixels in a single cv2.transform.
_RGB_TO_YIQ = np.array(
    [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=np.float64
)
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ)


def hue_saturation_matrix(hue: float, saturation: float) -> np.ndarray:
    """3x3 RGB matrix rotating hue by ``hue`` turns and scaling chroma by ``saturation``."""
    c, s = np.cos(2 * np.pi * hue), np.sin(2 * np.pi * hue)
    yiq = (
        np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
        * np.array([1.0, saturation, saturation])[:, None]
    )
    return _YIQ_TO_RGB @ yiq @ _RGB_TO_YIQ


def hue_saturation(image: np.ndarray, hue: float, saturation: float) -> np.ndarray:
    """Rotate hue by ``hue`` turns (fraction of the colour circle) and scale saturation (YIQ)."""
    return cv2.transform(image, hue_saturation_matrix(hue, saturation).astype(np.float32))


class StainAugment:
    """Random stain-family augmentation of one crop, configured by a `StainConfig`.

    Order: stain matrix (preset swap or Macenko perturbation), HED jitter, Planckian white
    balance and gamma as one OD-space affine (or, with no stain-matrix change, white balance and
    gamma in the LUT); brightness/contrast as one per-channel LUT; then hue/saturation.
    """

    def __init__(self, config: StainConfig) -> None:
        self.config = config
        self._preset_names = list(config.presets)

    @property
    def enabled(self) -> bool:
        """Whether any stain operation has a non-zero probability."""
        c = self.config
        return any(
            p > 0
            for p in (
                c.preset_p,
                c.macenko_p,
                c.hed_p,
                c.planckian_p,
                c.gamma_p,
                c.brightness_contrast_p,
                c.hue_saturation_p,
            )
        )

    @property
    def needs_stain_matrix(self) -> bool:
        """Whether some draw may need the image's Macenko stain matrix."""
        return self.config.preset_p > 0 or self.config.macenko_p > 0

    def __call__(
        self,
        image: np.ndarray,
        rng: np.random.Generator,
        stain_matrix: np.ndarray | None = None,
    ) -> np.ndarray:
        """Augment ``image``; ``stain_matrix`` (2, 3) skips the Macenko estimate when given."""
        c = self.config
        affine = None
        u = rng.random()
        if u < c.preset_p + c.macenko_p:
            source = estimate_stain_matrix(image) if stain_matrix is None else stain_matrix
            if u < c.preset_p:
                target = STAIN_PRESETS[self._preset_names[rng.integers(len(self._preset_names))]]
                scale = rng.uniform(*c.preset_intensity, size=2)
            else:
                target = perturb_stain_matrix(source, c.macenko_sigma, rng)
                scale = rng.uniform(*c.macenko_intensity, size=2)
            affine = stain_swap_affine(source, target, scale)
        if rng.random() < c.hed_p:
            s = c.hed_sigma
            jitter = hed_jitter_affine(rng.uniform(1 - s, 1 + s, 3), rng.uniform(-s, s, 3))
            affine = jitter if affine is None else compose_affine(affine, jitter)

        gains = None
        if rng.random() < c.planckian_p:
            gains = planckian_gains(rng.uniform(*c.temperature))
        gamma = float(np.exp(rng.uniform(*np.log(c.gamma)))) if rng.random() < c.gamma_p else 1.0
        if affine is not None and (gains is not None or gamma != 1.0):
            # Light colour and gamma are affine in OD too (I*g -> od - log g; I^gamma -> gamma*od,
            # exact up to the +1 of OD_LUT): fold them into the same single pass.
            g = np.ones(3) if gains is None else gains
            affine = compose_affine(affine, (gamma * np.eye(3), -gamma * np.log(g)))
            gains, gamma = None, 1.0
        out = image if affine is None else apply_od_affine(image, *affine)

        brightness, contrast = 0.0, 1.0
        tone = gains is not None or gamma != 1.0
        if rng.random() < c.brightness_contrast_p:
            brightness = rng.uniform(-c.brightness, c.brightness)
            contrast = rng.uniform(1 - c.contrast, 1 + c.contrast)
            tone = True
        if tone:
            # Contrast pivots about the image's mean grey (after gamma), like torchvision's.
            pivot = float(np.clip(out[::4, ::4].mean() / 255.0, 0.0, 1.0)) ** gamma
            out = apply_channel_lut(out, tone_lut(gains, gamma, brightness, contrast, pivot))
        if rng.random() < c.hue_saturation_p:
            out = hue_saturation(
                out,
                rng.uniform(-c.hue, c.hue),
                rng.uniform(1 - c.saturation, 1 + c.saturation),
            )
        return out


__all__ = [
    "HED_MATRIX",
    "REFERENCE_STAIN_MATRIX",
    "STAIN_PRESETS",
    "StainAugment",
    "apply_channel_lut",
    "apply_od_affine",
    "compose_affine",
    "hed_jitter_affine",
    "hue_saturation",
    "hue_saturation_matrix",
    "identity_affine",
    "perturb_stain_matrix",
    "planckian_gains",
    "stain_swap_affine",
    "tone_lut",
]

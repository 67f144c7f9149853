"""Scanner family: defocus and Gaussian blur, resolution loss, sensor noise, sharpening, JPEG.

Pure functions of (image, parameters) plus `ScannerAugment`, which draws the parameters. The
order follows the imaging chain: optics (defocus, blur) -> sampling (down-then-up scaling) ->
sensor (noise) -> scanner firmware (sharpening) -> storage (JPEG). Apply them to the final-size
crop: they cost per output pixel, and the strengths are calibrated in output pixels.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from vitkd.data.augment.presets import ScannerConfig


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with standard deviation ``sigma`` pixels (kernel 2*ceil(3 sigma)+1)."""
    if sigma <= 0:
        return image
    k = 2 * math.ceil(3 * sigma) + 1
    return cv2.GaussianBlur(image, (k, k), sigmaX=sigma, sigmaY=sigma)


def disk_kernel(radius: float) -> np.ndarray:
    """Normalised anti-aliased disk (out-of-focus point spread function) of ``radius`` pixels."""
    r = math.ceil(radius)
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    kernel = np.clip(radius + 0.5 - np.hypot(xx, yy), 0.0, 1.0).astype(np.float32)
    return kernel / kernel.sum()


def defocus(image: np.ndarray, radius: float) -> np.ndarray:
    """Defocus blur: convolution with a disk of ``radius`` pixels."""
    if radius <= 0:
        return image
    return cv2.filter2D(image, -1, disk_kernel(radius), borderType=cv2.BORDER_REFLECT_101)


def downscale(image: np.ndarray, factor: float) -> np.ndarray:
    """Resolution loss: area-downsample by ``factor`` (< 1), then bilinear back to the same size."""
    if factor >= 1:
        return image
    h, w = image.shape[:2]
    small = cv2.resize(
        image,
        (max(1, round(w * factor)), max(1, round(h * factor))),
        interpolation=cv2.INTER_AREA,
    )
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


_NOISE_BANK_SIDE = 512
_noise_bank: np.ndarray | None = None


def _bank() -> np.ndarray:
    # Drawing fresh normals costs ~1.3 ms per 224 px crop, ten times the rest of the op; a fixed
    # per-process field read at a random offset and orientation is as good for augmentation.
    global _noise_bank
    if _noise_bank is None:
        side = _NOISE_BANK_SIDE
        _noise_bank = np.random.default_rng(0x5EED).standard_normal((side, side, 3), np.float32)
    return _noise_bank


def gaussian_noise(image: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    """Additive per-channel Gaussian sensor noise of ``std`` grey levels.

    The noise is a window of a fixed Gaussian field at an offset and flip drawn from ``rng``
    (fresh normals for images larger than the field).
    """
    if std <= 0:
        return image
    h, w = image.shape[:2]
    bank = _bank()
    if h <= bank.shape[0] and w <= bank.shape[1]:
        y, x = rng.integers(0, bank.shape[0] - h + 1), rng.integers(0, bank.shape[1] - w + 1)
        field = bank[y : y + h, x : x + w]
        flip = int(rng.integers(4))
        field = field[::-1] if flip & 1 else field
        field = field[:, ::-1] if flip & 2 else field
        noise = np.multiply(field, np.float32(std))
    else:
        noise = rng.standard_normal(image.shape, dtype=np.float32) * np.float32(std)
    return cv2.add(image, noise, dtype=cv2.CV_8U)


def sharpen(image: np.ndarray, amount: float, sigma: float = 1.0) -> np.ndarray:
    """Unsharp masking: ``image + amount * (image - blur(image, sigma))``."""
    if amount <= 0:
        return image
    blurred = gaussian_blur(image, sigma)
    return cv2.addWeighted(image, 1.0 + amount, blurred, -amount, 0.0)


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """JPEG re-compression at ``quality`` (1-100), 4:2:0 chroma as scanners write it."""
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)  # OpenCV encodes BGR: keep the luma weights right
    ok, buf = cv2.imencode(".jpg", bgr, (cv2.IMWRITE_JPEG_QUALITY, int(quality)))
    if not ok:
        raise RuntimeError(f"OpenCV failed to JPEG-encode an image of shape {image.shape}")
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


class ScannerAugment:
    """Random scanner-family augmentation of one crop, configured by a `ScannerConfig`.

    Defocus and Gaussian blur are exclusive (one optical blur per crop).
    """

    def __init__(self, config: ScannerConfig) -> None:
        self.config = config

    @property
    def enabled(self) -> bool:
        """Whether any scanner operation has a non-zero probability."""
        c = self.config
        return any(
            p > 0 for p in (c.defocus_p, c.blur_p, c.downscale_p, c.noise_p, c.sharpen_p, c.jpeg_p)
        )

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Augment ``image`` (uint8 RGB) with draws from ``rng``."""
        c = self.config
        out = image
        u = rng.random()
        if u < c.defocus_p:
            out = defocus(out, rng.uniform(*c.defocus_radius))
        elif u < c.defocus_p + c.blur_p:
            out = gaussian_blur(out, rng.uniform(*c.blur_sigma))
        if rng.random() < c.downscale_p:
            out = downscale(out, rng.uniform(*c.downscale))
        if rng.random() < c.noise_p:
            out = gaussian_noise(out, rng.uniform(*c.noise_std), rng)
        if rng.random() < c.sharpen_p:
            out = sharpen(out, rng.uniform(*c.sharpen_amount))
        if rng.random() < c.jpeg_p:
            out = jpeg(out, int(rng.integers(c.jpeg_quality[0], c.jpeg_quality[1] + 1)))
        return out

"""Macenko stain-vector estimation: the H&E optical-density directions of a tile."""

import numpy as np

# OD of every uint8 value; the +1 keeps log finite at 0 and makes white (255) exactly 0.
OD_LUT = (-np.log((np.arange(256, dtype=np.float64) + 1.0) / 256.0)).astype(np.float32)

# Ruifrok & Johnston H and E optical-density vectors (unit norm): the fallback when a tile has
# too little stained tissue for an estimate.
_RUIFROK_HE = np.array([[0.650, 0.704, 0.286], [0.072, 0.990, 0.105]], dtype=np.float32)
REFERENCE_STAIN_MATRIX = _RUIFROK_HE / np.linalg.norm(_RUIFROK_HE, axis=1, keepdims=True)


def optical_density(image: np.ndarray) -> np.ndarray:
    """Optical density ``-log((I + 1) / 256)`` of a uint8 RGB image, float32, same shape."""
    return OD_LUT[image]


def estimate_stain_matrix(
    image: np.ndarray,
    beta: float = 0.15,
    alpha: float = 1.0,
    max_pixels: int = 4096,
    min_pixels: int = 64,
) -> np.ndarray:
    """Estimate the H&E stain matrix of a tile with Macenko's method.

    Pixels whose optical density is below ``beta`` in any channel (background) are dropped, the
    rest projected on the plane of the two main OD eigenvectors, and the stain directions taken
    at the ``alpha`` and ``100 - alpha`` percentiles of the angle in that plane.

    Args:
        image: uint8 RGB image (H, W, 3).
        beta: OD threshold separating tissue from background.
        alpha: robust-extreme percentile of the angle distribution.
        max_pixels: pixels are subsampled on a fixed stride to about this many (speed).
        min_pixels: with fewer tissue pixels the reference (Ruifrok) matrix is returned.

    Returns:
        float32 (2, 3): unit-norm non-negative OD vectors, hematoxylin first, eosin second.
    """
    # A regular spatial subsample first: the estimate needs thousands of pixels, not all of them.
    step = max(1, round(float(np.sqrt(image.shape[0] * image.shape[1] / (2 * max_pixels)))))
    flat = np.ascontiguousarray(image[::step, ::step]).reshape(-1, 3)
    # OD > beta in every channel <=> the brightest channel is below this grey level.
    cutoff = 256.0 * np.exp(-beta) - 1.0
    brightest = np.maximum(np.maximum(flat[:, 0], flat[:, 1]), flat[:, 2])
    idx = np.flatnonzero(brightest < cutoff)
    if len(idx) < min_pixels:
        return REFERENCE_STAIN_MATRIX.copy()
    if len(idx) > max_pixels:
        idx = idx[:: int(np.ceil(len(idx) / max_pixels))]
    od = OD_LUT[flat[idx]]
    od64 = od.astype(np.float64)
    centred = od64 - od64.mean(axis=0)
    _, eigvecs = np.linalg.eigh(centred.T @ centred)
    plane = eigvecs[:, 1:3]
    # eigh's sign is arbitrary; point both axes into the positive OD octant so angles are stable.
    plane = plane * np.where(plane.sum(axis=0) < 0, -1.0, 1.0)
    proj = od64 @ plane
    phi = np.arctan2(proj[:, 1], proj[:, 0])
    # Nearest-rank percentiles with one partition (np.percentile costs several times more).
    k = min(int(len(phi) * alpha / 100.0), len(phi) - 1)
    part = np.partition(phi, (k, len(phi) - 1 - k))
    lo, hi = part[k], part[len(phi) - 1 - k]
    v_lo = plane @ np.array([np.cos(lo), np.sin(lo)])
    v_hi = plane @ np.array([np.cos(hi), np.sin(hi)])
    # Hematoxylin absorbs more red than eosin does: the vector with the larger R component is H.
    h, e = (v_lo, v_hi) if v_lo[0] > v_hi[0] else (v_hi, v_lo)
    stains = np.stack([h, e])
    stains = np.where(stains.sum(axis=1, keepdims=True) < 0, -stains, stains)
    stains = np.clip(stains, 0.0, None)
    norms = np.linalg.norm(stains, axis=1, keepdims=True)
    if (norms < 1e-6).any():
        return REFERENCE_STAIN_MATRIX.copy()
    return (stains / norms).astype(np.float32)


def stain_angles_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle in degrees between corresponding rows (stain vectors) of two (k, 3) matrices."""
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.degrees(np.arccos(np.clip((a * b).sum(axis=1), -1.0, 1.0)))

"""Scanner family: each operation changes the image in its own, measured way."""

import cv2
import numpy as np

from vitkd.data.augment import scanner as sc


def laplacian_var(image: np.ndarray) -> float:
    """High-frequency energy: variance of the Laplacian of the luma."""
    return float(cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())


def blockiness(image: np.ndarray) -> float:
    """Mean absolute luma step across 8x8 block boundaries over the step inside blocks."""
    g = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float64)
    dx, dy = np.abs(np.diff(g, axis=1)), np.abs(np.diff(g, axis=0))
    bx = np.arange(dx.shape[1]) % 8 == 7
    by = np.arange(dy.shape[0]) % 8 == 7
    boundary = np.concatenate([dx[:, bx].ravel(), dy[by].ravel()]).mean()
    interior = np.concatenate([dx[:, ~bx].ravel(), dy[~by].ravel()]).mean()
    return float(boundary / interior)


def test_blurs_and_downscale_lower_high_frequencies(tissue_tile: np.ndarray) -> None:
    base = laplacian_var(tissue_tile)
    assert laplacian_var(sc.gaussian_blur(tissue_tile, 1.0)) < 0.3 * base
    assert laplacian_var(sc.defocus(tissue_tile, 2.0)) < 0.3 * base
    assert laplacian_var(sc.downscale(tissue_tile, 0.5)) < 0.5 * base


def test_sharpen_raises_high_frequencies(tissue_tile: np.ndarray) -> None:
    assert laplacian_var(sc.sharpen(tissue_tile, 0.8)) > 1.3 * laplacian_var(tissue_tile)


def test_noise_raises_high_frequencies_in_flat_regions() -> None:
    flat = np.full((96, 96, 3), (200, 170, 190), np.uint8)
    noisy = sc.gaussian_noise(flat, 4.0, np.random.default_rng(0))
    assert laplacian_var(flat) == 0.0
    assert laplacian_var(noisy) > 20.0
    diff = noisy.astype(float) - flat
    assert abs(diff.std() - 4.0) < 0.4  # the requested strength, in grey levels
    assert abs(diff.mean()) < 0.3


def test_noise_larger_than_bank_and_deterministic() -> None:
    flat = np.full((600, 40, 3), 128, np.uint8)
    a = sc.gaussian_noise(flat, 3.0, np.random.default_rng(1))
    b = sc.gaussian_noise(flat, 3.0, np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)
    assert a.shape == flat.shape and a.std() > 2.0


def test_low_quality_jpeg_adds_block_artefacts(tissue_tile: np.ndarray) -> None:
    base = blockiness(tissue_tile)
    assert abs(base - 1.0) < 0.35  # the slide's own 8x8 grid is not aligned with this tile
    assert blockiness(sc.jpeg(tissue_tile, 10)) > base + 0.3
    assert abs(blockiness(sc.jpeg(tissue_tile, 95)) - base) < 0.1


def test_ops_keep_shape_dtype_and_are_noops_at_zero(tissue_tile: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    for out in (
        sc.gaussian_blur(tissue_tile, 0.7),
        sc.defocus(tissue_tile, 1.5),
        sc.downscale(tissue_tile, 0.6),
        sc.gaussian_noise(tissue_tile, 2.0, rng),
        sc.sharpen(tissue_tile, 0.5),
        sc.jpeg(tissue_tile, 50),
    ):
        assert out.shape == tissue_tile.shape and out.dtype == np.uint8
    assert sc.gaussian_blur(tissue_tile, 0) is tissue_tile
    assert sc.defocus(tissue_tile, 0) is tissue_tile
    assert sc.downscale(tissue_tile, 1.0) is tissue_tile
    assert sc.sharpen(tissue_tile, 0) is tissue_tile


def test_disk_kernel_is_normalised_disk() -> None:
    k = sc.disk_kernel(2.0)
    assert k.shape == (5, 5)
    np.testing.assert_allclose(k.sum(), 1.0, rtol=1e-6)
    assert k[2, 2] > 0 and k[0, 0] == 0

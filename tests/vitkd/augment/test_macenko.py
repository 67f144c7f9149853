"""Macenko stain-vector estimation recovers known stains and behaves on edge cases."""

import numpy as np

from vitkd.data.augment.macenko import (
    REFERENCE_STAIN_MATRIX,
    estimate_stain_matrix,
    optical_density,
    stain_angles_deg,
)


def _two_stain_blocks(stains: np.ndarray) -> np.ndarray:
    # Pure-H and pure-E pixels at a range of concentrations, plus white background.
    conc = np.linspace(0.2, 1.5, 64, dtype=np.float64)
    h = np.outer(conc, stains[0])
    e = np.outer(conc, stains[1])
    od = np.concatenate([h, e, np.zeros((32, 3))])
    rgb = np.clip(256 * np.exp(-od) - 0.5, 0, 255).astype(np.uint8)
    return np.repeat(rgb[:, None, :], 8, axis=1)


def test_recovers_known_stain_vectors() -> None:
    stains = np.array([[0.55, 0.75, 0.37], [0.10, 0.95, 0.30]])
    stains /= np.linalg.norm(stains, axis=1, keepdims=True)
    est = estimate_stain_matrix(_two_stain_blocks(stains))
    assert est.shape == (2, 3) and est.dtype == np.float32
    assert stain_angles_deg(est, stains).max() < 2.0


def test_output_is_unit_nonnegative_h_first(tissue_tile: np.ndarray) -> None:
    est = estimate_stain_matrix(tissue_tile)
    np.testing.assert_allclose(np.linalg.norm(est, axis=1), 1.0, atol=1e-5)
    assert (est >= 0).all()
    assert est[0, 0] > est[1, 0]  # hematoxylin absorbs more red than eosin
    # A real H&E tile is near the textbook vectors, not anywhere in colour space.
    assert stain_angles_deg(est, REFERENCE_STAIN_MATRIX).max() < 25


def test_blank_tile_falls_back_to_reference() -> None:
    white = np.full((64, 64, 3), 250, np.uint8)
    np.testing.assert_array_equal(estimate_stain_matrix(white), REFERENCE_STAIN_MATRIX)


def test_optical_density_of_white_is_zero() -> None:
    od = optical_density(np.array([[[255, 0, 127]]], np.uint8))
    assert od[0, 0, 0] == 0.0
    np.testing.assert_allclose(od[0, 0, 1], np.log(256.0), rtol=1e-6)

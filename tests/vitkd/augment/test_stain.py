"""Stain family: OD-space algebra, and measured effect on the estimated stain vectors."""

import numpy as np
import pytest

from vitkd.data.augment import CropAugmenter, isolate
from vitkd.data.augment import stain as st
from vitkd.data.augment.macenko import estimate_stain_matrix, stain_angles_deg


def _random_image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (48, 40, 3), dtype=np.uint8)


def _mean_angle(image: np.ndarray, operation: str, seeds: int = 6, **strength: object) -> float:
    ref = estimate_stain_matrix(image)
    aug = CropAugmenter(isolate(operation, **strength))
    return float(
        np.mean(
            [
                stain_angles_deg(
                    ref, estimate_stain_matrix(aug(image, np.random.default_rng(i)))
                ).max()
                for i in range(seeds)
            ]
        )
    )


def test_identity_affine_is_exact() -> None:
    img = _random_image()
    np.testing.assert_array_equal(st.apply_od_affine(img, *st.identity_affine()), img)


def test_swap_to_same_matrix_is_identity_and_matches_numpy(tissue_tile: np.ndarray) -> None:
    src = estimate_stain_matrix(tissue_tile)
    out = st.apply_od_affine(tissue_tile, *st.stain_swap_affine(src, src))
    assert np.abs(out.astype(int) - tissue_tile).max() <= 1
    # Independent Beer-Lambert computation of a re-stain with scaled concentrations.
    target = st.STAIN_PRESETS["e_heavy"]
    od = -np.log((tissue_tile.reshape(-1, 3).astype(np.float64) + 1) / 256)
    conc, *_ = np.linalg.lstsq(src.T.astype(np.float64), od.T, rcond=None)
    resid = od - conc.T @ src
    new_od = (conc.T * [1.2, 0.8]) @ target + resid
    expect = np.clip(np.rint(256 * np.exp(-new_od) - 1), 0, 255).reshape(tissue_tile.shape)
    got = st.apply_od_affine(tissue_tile, *st.stain_swap_affine(src, target, (1.2, 0.8)))
    assert np.abs(got.astype(int) - expect).max() <= 1


def test_compose_affine_equals_sequential(tissue_tile: np.ndarray) -> None:
    a = st.hed_jitter_affine(np.array([1.1, 0.9, 1.0]), np.array([0.02, -0.01, 0.0]))
    b = st.stain_swap_affine(st.STAIN_PRESETS["ruifrok"], st.STAIN_PRESETS["dark"], (1.1, 1.0))
    od = st.OD_LUT[tissue_tile].reshape(-1, 3).astype(np.float64)
    seq = (od @ a[0] + a[1]) @ b[0] + b[1]
    m, o = st.compose_affine(a, b)
    np.testing.assert_allclose(od @ m + o, seq, atol=1e-9)


def test_hed_jitter_neutral_parameters_are_identity() -> None:
    m, o = st.hed_jitter_affine(np.ones(3), np.zeros(3))
    np.testing.assert_allclose(m, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(o, 0.0)


def test_planckian_neutral_at_6500_and_warm_is_red() -> None:
    np.testing.assert_allclose(st.planckian_gains(6500), 1.0)
    warm = st.planckian_gains(5500)
    assert warm[0] > 1.0 > warm[2]


def test_hue_saturation_neutral_and_gray_fixed() -> None:
    img = _random_image()
    np.testing.assert_array_equal(st.hue_saturation(img, 0.0, 1.0), img)
    gray = np.full((8, 8, 3), 137, np.uint8)
    np.testing.assert_array_equal(st.hue_saturation(gray, 0.1, 1.3), gray)
    desat = st.hue_saturation(img, 0.0, 0.0).astype(int)
    assert np.abs(desat - desat.mean(axis=2, keepdims=True)).max() <= 1


@pytest.mark.parametrize("operation", ["stain_preset", "macenko"])
def test_stain_jitter_moves_stain_vectors_blur_does_not(
    synthetic_tile: np.ndarray, operation: str
) -> None:
    moved = _mean_angle(synthetic_tile, operation)
    blurred = _mean_angle(synthetic_tile, "blur", blur_sigma=(1.5, 1.5))
    defocused = _mean_angle(synthetic_tile, "defocus", defocus_radius=(2.5, 2.5))
    assert moved > 4.0
    assert blurred < 1.5 and defocused < 1.5


def test_stain_jitter_moves_stain_vectors_on_real_tissue(tissue_tile: np.ndarray) -> None:
    assert _mean_angle(tissue_tile, "stain_preset") > 4.0
    assert _mean_angle(tissue_tile, "macenko") > 3.0


def test_hed_jitter_changes_concentrations(tissue_tile: np.ndarray) -> None:
    aug = CropAugmenter(isolate("hed", hed_sigma=0.1))
    out = aug(tissue_tile, np.random.default_rng(0))
    assert np.abs(out.astype(int) - tissue_tile).mean() > 2.0

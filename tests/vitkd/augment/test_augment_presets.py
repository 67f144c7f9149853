"""Augmentation configs: presets, validation errors, isolating one operation."""

import dataclasses

import pytest

from vitkd.data.augment import (
    OPERATIONS,
    PRESETS,
    AugmentConfig,
    AugmentConfigError,
    ColorConfig,
    ScannerConfig,
    StainConfig,
    isolate,
    resolve_augment,
)


def test_presets_exist_and_resolve() -> None:
    assert {"none", "light", "dinov2", "pathology"} <= set(PRESETS)
    assert resolve_augment("pathology") is PRESETS["pathology"]
    cfg = AugmentConfig(name="mine")
    assert resolve_augment(cfg) is cfg


def test_dinov2_preset_is_the_reference_recipe() -> None:
    c = PRESETS["dinov2"].color
    assert (c.jitter_p, c.brightness, c.contrast, c.saturation, c.hue) == (0.8, 0.4, 0.4, 0.2, 0.1)
    assert c.grayscale_p == 0.2
    assert c.blur_p == (1.0, 0.1, 0.5)  # the intended values, not the reference's inversion
    assert c.solarize_p == (0.0, 0.2, 0.0)


def test_unknown_preset_names_valid_ones() -> None:
    with pytest.raises(AugmentConfigError, match="pathology"):
        resolve_augment("pathalogy")


@pytest.mark.parametrize(
    ("factory", "field"),
    [
        (lambda: StainConfig(hed_p=1.5), "hed_p"),
        (lambda: StainConfig(preset_p=0.7, macenko_p=0.5), "macenko_p"),
        (lambda: StainConfig(presets=("nope",)), "presets"),
        (lambda: StainConfig(gamma=(1.2, 0.8)), "gamma"),
        (lambda: ScannerConfig(jpeg_quality=(50, 120)), "jpeg_quality"),
        (lambda: ScannerConfig(defocus_p=0.6, blur_p=0.6), "blur_p"),
        (lambda: ScannerConfig(mpp_jitter=0.7), "mpp_jitter"),
        (lambda: ColorConfig(blur_p=(1.0, 0.1)), "blur_p"),
    ],
)
def test_bad_values_name_the_field(factory, field: str) -> None:
    with pytest.raises(AugmentConfigError, match=field):
        factory()


def test_isolate_keeps_only_one_operation() -> None:
    for op, (family, prob) in OPERATIONS.items():
        cfg = isolate(op)
        probs = {
            f"{fam}.{f.name}": getattr(getattr(cfg, fam), f.name)
            for fam in ("stain", "scanner")
            for f in dataclasses.fields(getattr(cfg, fam))
            if f.name.endswith("_p")
        }
        assert probs.pop(f"{family}.{prob}") == 1.0
        assert all(v == 0.0 for v in probs.values()), op
    assert isolate("jpeg", jpeg_quality=(10, 10)).scanner.jpeg_quality == (10, 10)
    with pytest.raises(AugmentConfigError, match="valid"):
        isolate("sepia")

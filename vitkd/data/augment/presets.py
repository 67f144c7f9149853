"""Augmentation configuration: per-family probabilities and strengths, and the named presets.

Presets:

- ``none``: no colour, stain or scanner change (geometry only).
- ``light``: a whisper of brightness/contrast/saturation; what the teacher sees with
  ``MultiCrop(teacher_view="light")``.
- ``dinov2``: the DINOv2 reference colour augmentation: ColorJitter(0.4, 0.4, 0.2, 0.1) p=0.8,
  grayscale p=0.2, Gaussian blur (p = 1.0 / 0.1 / 0.5 on global-1 / global-2 / local crops),
  solarisation p=0.2 on global-2 only.
- ``pathology`` (default): H&E stain family (preset re-staining, Macenko perturbation, HED
  jitter, Planckian white balance, gamma, brightness/contrast, hue/saturation) and scanner family
  (defocus/blur, resolution loss, sensor noise, sharpening, JPEG, MPP jitter); no grayscale or
  solarisation, which destroy the stain information the model must learn to be robust *about*.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

# The three kinds of crop a per-view probability refers to, in this order.
VIEWS = ("global1", "global2", "local")


class AugmentConfigError(ValueError):
    """An augmentation setting is out of range or a preset name is unknown."""


def _check_p(owner: str, name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise AugmentConfigError(f"{owner}.{name}={value!r} must be a probability in [0, 1]")


def _check_range(owner: str, name: str, value: tuple[float, float], low: float = 0.0) -> None:
    if len(value) != 2 or not low <= value[0] <= value[1]:
        raise AugmentConfigError(
            f"{owner}.{name}={value!r} must be a (min, max) pair with {low} <= min <= max"
        )


@dataclass(frozen=True)
class StainConfig:
    """Stain family: probabilities (``*_p``) and strengths.

    ``preset_p`` and ``macenko_p`` are exclusive: at most one stain-matrix change per crop, so
    their sum must be <= 1.

    Args:
        preset_p: re-stain with one of ``presets`` (albumentations HEStain matrices), unmixing
            with the crop's own Macenko-estimated matrix.
        presets: names of the H&E preset matrices to draw from.
        preset_intensity: range of the H and E concentration factors of a preset re-stain.
        macenko_p: re-stain with the crop's Macenko matrix perturbed by noise of std
            ``macenko_sigma`` per unit vector component (0.08 ~ 4-5 degrees).
        macenko_intensity: range of the H and E concentration factors of that re-stain.
        hed_p, hed_sigma: HED jitter (Tellez et al.): ``c' = c * U(1 +- s) + U(+- s)``.
        planckian_p, temperature: colour temperature of the light, kelvin (6500 neutral).
        gamma_p, gamma: gamma drawn log-uniformly in the range.
        brightness_contrast_p, brightness, contrast: additive brightness (fraction of full
            scale) and contrast factor ``U(1 +- contrast)`` about the mean grey.
        hue_saturation_p, hue, saturation: hue shift in turns ``U(+- hue)`` and saturation
            factor ``U(1 +- saturation)``.
    """

    preset_p: float = 0.0
    presets: tuple[str, ...] = (
        "ruifrok",
        "macenko",
        "standard",
        "high_contrast",
        "h_heavy",
        "e_heavy",
        "dark",
        "light",
    )
    preset_intensity: tuple[float, float] = (0.75, 1.25)
    macenko_p: float = 0.0
    macenko_sigma: float = 0.08
    macenko_intensity: tuple[float, float] = (0.8, 1.2)
    hed_p: float = 0.0
    hed_sigma: float = 0.04
    planckian_p: float = 0.0
    temperature: tuple[float, float] = (5500.0, 8000.0)
    gamma_p: float = 0.0
    gamma: tuple[float, float] = (0.8, 1.25)
    brightness_contrast_p: float = 0.0
    brightness: float = 0.08
    contrast: float = 0.15
    hue_saturation_p: float = 0.0
    hue: float = 0.02
    saturation: float = 0.2

    def __post_init__(self) -> None:
        """Validate ranges."""
        from albumentations.augmentations.pixel.functional import STAIN_MATRICES

        o = "StainConfig"
        for name in ("preset_p", "macenko_p", "hed_p", "planckian_p", "gamma_p"):
            _check_p(o, name, getattr(self, name))
        _check_p(o, "brightness_contrast_p", self.brightness_contrast_p)
        _check_p(o, "hue_saturation_p", self.hue_saturation_p)
        if self.preset_p + self.macenko_p > 1.0:
            raise AugmentConfigError(
                f"{o}.preset_p + macenko_p = {self.preset_p + self.macenko_p} must be <= 1 "
                "(they are exclusive per crop)"
            )
        unknown = [p for p in self.presets if p not in STAIN_MATRICES]
        if unknown or not self.presets:
            raise AugmentConfigError(
                f"{o}.presets has unknown or no names {unknown}; valid: {sorted(STAIN_MATRICES)}"
            )
        _check_range(o, "preset_intensity", self.preset_intensity)
        _check_range(o, "macenko_intensity", self.macenko_intensity)
        _check_range(o, "temperature", self.temperature, low=3000.0)
        _check_range(o, "gamma", self.gamma, low=1e-3)
        for name in ("macenko_sigma", "hed_sigma", "brightness", "contrast", "saturation"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise AugmentConfigError(f"{o}.{name}={getattr(self, name)!r} must be in [0, 1]")
        if not 0.0 <= self.hue <= 0.5:
            raise AugmentConfigError(f"{o}.hue={self.hue!r} must be in [0, 0.5] turns")


@dataclass(frozen=True)
class ScannerConfig:
    """Scanner family: probabilities (``*_p``) and strengths, in output-crop pixels.

    ``defocus_p`` and ``blur_p`` are exclusive (sum <= 1).

    Args:
        defocus_p, defocus_radius: disk blur radius range, pixels.
        blur_p, blur_sigma: Gaussian blur sigma range, pixels.
        downscale_p, downscale: down-then-up scale factor range (< 1 loses resolution).
        noise_p, noise_std: additive Gaussian sensor noise, grey levels.
        sharpen_p, sharpen_amount: unsharp-mask amount range.
        jpeg_p, jpeg_quality: JPEG re-compression quality range (inclusive).
        mpp_jitter: relative jitter of the crop's side length (0.1 = up to +-10% microns per
            pixel). Part of the crop *geometry*: shared by the teacher and student views.
    """

    defocus_p: float = 0.0
    defocus_radius: tuple[float, float] = (1.0, 2.5)
    blur_p: float = 0.0
    blur_sigma: tuple[float, float] = (0.3, 1.5)
    downscale_p: float = 0.0
    downscale: tuple[float, float] = (0.4, 0.85)
    noise_p: float = 0.0
    noise_std: tuple[float, float] = (1.0, 6.0)
    sharpen_p: float = 0.0
    sharpen_amount: tuple[float, float] = (0.2, 1.0)
    jpeg_p: float = 0.0
    jpeg_quality: tuple[int, int] = (30, 95)
    mpp_jitter: float = 0.0

    def __post_init__(self) -> None:
        """Validate ranges."""
        o = "ScannerConfig"
        for name in ("defocus_p", "blur_p", "downscale_p", "noise_p", "sharpen_p", "jpeg_p"):
            _check_p(o, name, getattr(self, name))
        if self.defocus_p + self.blur_p > 1.0:
            raise AugmentConfigError(f"{o}.defocus_p + blur_p must be <= 1 (exclusive per crop)")
        for name in ("defocus_radius", "blur_sigma", "noise_std", "sharpen_amount"):
            _check_range(o, name, getattr(self, name))
        _check_range(o, "downscale", self.downscale, low=0.05)
        if self.downscale[1] > 1.0:
            raise AugmentConfigError(f"{o}.downscale={self.downscale!r} must lie in [0.05, 1]")
        _check_range(o, "jpeg_quality", self.jpeg_quality, low=1)
        if self.jpeg_quality[1] > 100:
            raise AugmentConfigError(f"{o}.jpeg_quality={self.jpeg_quality!r} must lie in [1, 100]")
        if not 0.0 <= self.mpp_jitter < 0.5:
            raise AugmentConfigError(f"{o}.mpp_jitter={self.mpp_jitter!r} must be in [0, 0.5)")


@dataclass(frozen=True)
class ColorConfig:
    """DINOv2 reference colour family.

    ``blur_p`` and ``solarize_p`` are per view (global-1, global-2, local). DINOv2's reference
    code asks for blur p = 1.0 / 0.1 / 0.5, but its ``GaussianBlur`` wrapper passes ``1 - p`` to
    ``RandomApply``, so it really blurs with p = 0.0 / 0.9 / 0.5. vitkd uses the *intended*
    values by default; set ``blur_p=(0.0, 0.9, 0.5)`` to reproduce the reference exactly.

    Args:
        jitter_p, brightness, contrast, saturation, hue: torchvision ColorJitter.
        grayscale_p: probability of converting to grayscale.
        blur_p, blur_sigma: Gaussian blur (9x9 kernel) per view and its sigma range.
        solarize_p: solarisation probability per view.
    """

    jitter_p: float = 0.0
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.1
    grayscale_p: float = 0.0
    blur_p: tuple[float, float, float] = (0.0, 0.0, 0.0)
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    solarize_p: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        """Validate ranges."""
        o = "ColorConfig"
        _check_p(o, "jitter_p", self.jitter_p)
        _check_p(o, "grayscale_p", self.grayscale_p)
        for name in ("blur_p", "solarize_p"):
            value = getattr(self, name)
            if len(value) != len(VIEWS):
                raise AugmentConfigError(f"{o}.{name}={value!r} needs one probability per {VIEWS}")
            for v in value:
                _check_p(o, name, v)
        _check_range(o, "blur_sigma", self.blur_sigma, low=1e-3)
        if not 0.0 <= self.hue <= 0.5:
            raise AugmentConfigError(f"{o}.hue={self.hue!r} must be in [0, 0.5] turns")


@dataclass(frozen=True)
class AugmentConfig:
    """Per-crop photometric augmentation: stain, DINOv2 colour and scanner families.

    Applied in that order on each final-size crop (solarisation, when on, last).
    """

    name: str = "custom"
    stain: StainConfig = field(default_factory=StainConfig)
    color: ColorConfig = field(default_factory=ColorConfig)
    scanner: ScannerConfig = field(default_factory=ScannerConfig)

    def replace(self, **changes: object) -> AugmentConfig:
        """A copy with top-level fields replaced (e.g. ``scanner=ScannerConfig(...)``)."""
        return dataclasses.replace(self, **changes)


PRESETS: dict[str, AugmentConfig] = {
    "none": AugmentConfig(name="none"),
    "light": AugmentConfig(
        name="light",
        stain=StainConfig(
            brightness_contrast_p=0.5,
            brightness=0.03,
            contrast=0.05,
            hue_saturation_p=0.3,
            hue=0.01,
            saturation=0.05,
        ),
    ),
    "dinov2": AugmentConfig(
        name="dinov2",
        color=ColorConfig(
            jitter_p=0.8, grayscale_p=0.2, blur_p=(1.0, 0.1, 0.5), solarize_p=(0.0, 0.2, 0.0)
        ),
    ),
    "pathology": AugmentConfig(
        name="pathology",
        stain=StainConfig(
            preset_p=0.2,
            macenko_p=0.4,
            hed_p=0.5,
            planckian_p=0.3,
            gamma_p=0.3,
            brightness_contrast_p=0.5,
            hue_saturation_p=0.3,
        ),
        scanner=ScannerConfig(
            defocus_p=0.1,
            blur_p=0.2,
            downscale_p=0.2,
            noise_p=0.2,
            sharpen_p=0.15,
            jpeg_p=0.3,
            mpp_jitter=0.1,
        ),
    ),
}


def resolve_augment(augment: str | AugmentConfig) -> AugmentConfig:
    """A preset by name, or the given config unchanged."""
    if isinstance(augment, AugmentConfig):
        return augment
    if augment not in PRESETS:
        raise AugmentConfigError(
            f"unknown augmentation preset {augment!r}; valid presets: {sorted(PRESETS)} "
            "(or pass an AugmentConfig)"
        )
    return PRESETS[augment]


# Each single operation: (family field of AugmentConfig, its probability field).
OPERATIONS: dict[str, tuple[str, str]] = {
    "stain_preset": ("stain", "preset_p"),
    "macenko": ("stain", "macenko_p"),
    "hed": ("stain", "hed_p"),
    "planckian": ("stain", "planckian_p"),
    "gamma": ("stain", "gamma_p"),
    "brightness_contrast": ("stain", "brightness_contrast_p"),
    "hue_saturation": ("stain", "hue_saturation_p"),
    "defocus": ("scanner", "defocus_p"),
    "blur": ("scanner", "blur_p"),
    "downscale": ("scanner", "downscale_p"),
    "noise": ("scanner", "noise_p"),
    "sharpen": ("scanner", "sharpen_p"),
    "jpeg": ("scanner", "jpeg_p"),
}


def isolate(
    operation: str, base: str | AugmentConfig = "pathology", **strength: object
) -> AugmentConfig:
    """``base`` with every probability zeroed except ``operation``'s, set to 1.

    Strength fields of that operation's family can be overridden by keyword (e.g.
    ``isolate("jpeg", jpeg_quality=(10, 10))``). For showing and testing one operation at a time.
    """
    if operation not in OPERATIONS:
        raise AugmentConfigError(f"unknown operation {operation!r}; valid: {sorted(OPERATIONS)}")
    cfg = resolve_augment(base)
    zero_stain = {f: 0.0 for fam, f in OPERATIONS.values() if fam == "stain"}
    zero_scanner = {f: 0.0 for fam, f in OPERATIONS.values() if fam == "scanner"}
    family, prob = OPERATIONS[operation]
    stain = dataclasses.replace(cfg.stain, **zero_stain)
    scanner = dataclasses.replace(cfg.scanner, **zero_scanner, mpp_jitter=0.0)
    if family == "stain":
        stain = dataclasses.replace(stain, **{prob: 1.0}, **strength)
    else:
        scanner = dataclasses.replace(scanner, **{prob: 1.0}, **strength)
    return AugmentConfig(name=operation, stain=stain, color=ColorConfig(), scanner=scanner)

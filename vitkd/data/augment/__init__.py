"""Stain and scanner augmentation, the DINOv2 colour family, presets and the condition simulator."""

from vitkd.data.augment.conditions import (
    DEFAULT_SCANNERS,
    DEFAULT_STAINS,
    Condition,
    ConditionSimulator,
    ScannerProfile,
    StainPreset,
)
from vitkd.data.augment.macenko import estimate_stain_matrix, stain_angles_deg
from vitkd.data.augment.pipeline import CropAugmenter
from vitkd.data.augment.presets import (
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

__all__ = [
    "DEFAULT_SCANNERS",
    "DEFAULT_STAINS",
    "OPERATIONS",
    "PRESETS",
    "AugmentConfig",
    "AugmentConfigError",
    "ColorConfig",
    "Condition",
    "ConditionSimulator",
    "CropAugmenter",
    "ScannerConfig",
    "ScannerProfile",
    "StainConfig",
    "StainPreset",
    "estimate_stain_matrix",
    "isolate",
    "resolve_augment",
    "stain_angles_deg",
]

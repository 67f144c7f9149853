"""Deterministic condition simulator: a tile under a named (stain preset x scanner profile).

Used outside training to build PLISM-like robustness sets from any slide: every tile is rendered
under every condition, registered pixel for pixel (no geometric change), and
``simulate(tile, condition_id)`` always returns the same image for the same inputs.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vitkd.data.augment import scanner as sc
from vitkd.data.augment.macenko import estimate_stain_matrix
from vitkd.data.augment.presets import AugmentConfigError
from vitkd.data.augment.stain import (
    STAIN_PRESETS,
    apply_channel_lut,
    apply_od_affine,
    hue_saturation,
    planckian_gains,
    stain_swap_affine,
    tone_lut,
)


@dataclass(frozen=True)
class StainPreset:
    """A fixed staining: re-stain to ``target`` (a `STAIN_PRESETS` name, None keeps the tile's
    own vectors) with H/E concentration factors, then light temperature, gamma and saturation."""

    name: str
    target: str | None = None
    h_scale: float = 1.0
    e_scale: float = 1.0
    temperature: float = 6500.0
    gamma: float = 1.0
    saturation: float = 1.0


@dataclass(frozen=True)
class ScannerProfile:
    """A fixed scanner: optical blur, resolution, sensor noise, sharpening and JPEG quality
    (0 / 1.0 / 100 switch an operation off)."""

    name: str
    blur_sigma: float = 0.0
    defocus_radius: float = 0.0
    downscale: float = 1.0
    noise_std: float = 0.0
    sharpen: float = 0.0
    jpeg_quality: int = 100


@dataclass(frozen=True)
class Condition:
    """One simulated acquisition: ``id`` = stain index * n_scanners + scanner index."""

    id: int
    stain: StainPreset
    scanner: ScannerProfile

    @property
    def name(self) -> str:
        """``"<stain>/<scanner>"``, e.g. ``"eosin_rich/low_res_jpeg"``."""
        return f"{self.stain.name}/{self.scanner.name}"


DEFAULT_STAINS: tuple[StainPreset, ...] = (
    StainPreset("reference"),
    StainPreset("hematoxylin_rich", target="h_heavy", h_scale=1.3, e_scale=0.9),
    StainPreset("eosin_rich", target="e_heavy", h_scale=0.85, e_scale=1.35),
    StainPreset("pale_faded", target="light", h_scale=0.7, e_scale=0.7, temperature=7500),
    StainPreset("dark_overstained", target="dark", h_scale=1.3, e_scale=1.2, gamma=1.1),
    StainPreset("warm_lamp", target="ruifrok", e_scale=1.1, temperature=5500, saturation=1.1),
    StainPreset("high_contrast", target="high_contrast", h_scale=1.15, e_scale=1.15),
    StainPreset("cool_desaturated", temperature=8000, saturation=0.8),
)

DEFAULT_SCANNERS: tuple[ScannerProfile, ...] = (
    ScannerProfile("reference"),
    ScannerProfile("soft_focus", blur_sigma=1.2, jpeg_quality=90),
    ScannerProfile("low_res_jpeg", downscale=0.5, jpeg_quality=60),
    ScannerProfile("noisy_sharpened", noise_std=5.0, sharpen=0.8, jpeg_quality=80),
    ScannerProfile("defocus_heavy_jpeg", defocus_radius=2.0, jpeg_quality=40),
)


def _pick(kind: str, spec: int | Sequence, defaults: tuple) -> tuple:
    if isinstance(spec, int):
        if not 1 <= spec <= len(defaults):
            raise AugmentConfigError(
                f"{kind}={spec} must be between 1 and {len(defaults)} built-in {kind} "
                f"({[d.name for d in defaults]}), or pass a list of presets"
            )
        return tuple(defaults[:spec])
    items = tuple(spec)
    if not items:
        raise AugmentConfigError(f"{kind} is an empty list; give at least one preset")
    return items


def apply_stain_preset(image: np.ndarray, preset: StainPreset) -> np.ndarray:
    """Render ``image`` under a fixed staining (deterministic)."""
    out = image
    if preset.target is not None or preset.h_scale != 1.0 or preset.e_scale != 1.0:
        if preset.target is not None and preset.target not in STAIN_PRESETS:
            raise AugmentConfigError(
                f"StainPreset {preset.name!r}: unknown target {preset.target!r}; "
                f"valid: {sorted(STAIN_PRESETS)}"
            )
        source = estimate_stain_matrix(image)
        target = source if preset.target is None else STAIN_PRESETS[preset.target]
        out = apply_od_affine(
            out, *stain_swap_affine(source, target, (preset.h_scale, preset.e_scale))
        )
    if preset.temperature != 6500.0 or preset.gamma != 1.0:
        out = apply_channel_lut(out, tone_lut(planckian_gains(preset.temperature), preset.gamma))
    if preset.saturation != 1.0:
        out = hue_saturation(out, 0.0, preset.saturation)
    return out


def apply_scanner_profile(
    image: np.ndarray, profile: ScannerProfile, rng: np.random.Generator
) -> np.ndarray:
    """Render ``image`` through a fixed scanner; ``rng`` only draws the sensor noise."""
    out = sc.defocus(image, profile.defocus_radius)
    out = sc.gaussian_blur(out, profile.blur_sigma)
    out = sc.downscale(out, profile.downscale)
    out = sc.gaussian_noise(out, profile.noise_std, rng)
    out = sc.sharpen(out, profile.sharpen)
    if profile.jpeg_quality < 100:
        out = sc.jpeg(out, profile.jpeg_quality)
    return out


class ConditionSimulator:
    """Stain presets x scanner profiles, each rendered deterministically.

    Args:
        stains: how many of `DEFAULT_STAINS` to use (from the start), or a list of `StainPreset`.
        scanners: how many of `DEFAULT_SCANNERS`, or a list of `ScannerProfile`.
    """

    def __init__(
        self,
        stains: int | Sequence[StainPreset] = 6,
        scanners: int | Sequence[ScannerProfile] = 4,
    ) -> None:
        self.stains = _pick("stains", stains, DEFAULT_STAINS)
        self.scanners = _pick("scanners", scanners, DEFAULT_SCANNERS)

    @property
    def conditions(self) -> list[Condition]:
        """Every condition, ordered by id."""
        m = len(self.scanners)
        return [
            Condition(i * m + j, stain, scanner)
            for i, stain in enumerate(self.stains)
            for j, scanner in enumerate(self.scanners)
        ]

    def __len__(self) -> int:
        return len(self.stains) * len(self.scanners)

    def condition(self, condition_id: int) -> Condition:
        """The condition with this id."""
        if not 0 <= condition_id < len(self):
            raise AugmentConfigError(
                f"condition_id={condition_id} out of range: this simulator has {len(self)} "
                f"conditions ({len(self.stains)} stains x {len(self.scanners)} scanners)"
            )
        m = len(self.scanners)
        return Condition(
            condition_id, self.stains[condition_id // m], self.scanners[condition_id % m]
        )

    def simulate(self, tile: np.ndarray, condition_id: int) -> np.ndarray:
        """``tile`` (uint8 RGB) under condition ``condition_id``; same inputs, same output."""
        tile = np.ascontiguousarray(tile)
        if tile.dtype != np.uint8 or tile.ndim != 3 or tile.shape[2] != 3:
            raise ValueError(
                f"simulate expects a uint8 RGB tile (H, W, 3), got dtype {tile.dtype} shape "
                f"{tile.shape}"
            )
        cond = self.condition(condition_id)
        # Noise differs between tiles (like a real sensor) but is fixed per (tile, condition).
        rng = np.random.default_rng([condition_id, zlib.crc32(tile.data)])
        return apply_scanner_profile(apply_stain_preset(tile, cond.stain), cond.scanner, rng)

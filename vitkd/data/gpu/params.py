"""Per-crop augmentation parameters, drawn on the CPU from an `AugmentConfig` for the device path.

Drawing numbers is all the CPU does for a crop: the pixels are transformed later on the device by
`vitkd.data.gpu.ops`. Every parameter has a neutral value, so a crop whose operation was not
drawn passes through that operation unchanged and all crops of a batch share one code path.
"""

from __future__ import annotations

import logging

import numpy as np

from vitkd.data.augment.presets import VIEWS, AugmentConfig
from vitkd.data.augment.stain import (
    STAIN_PRESETS,
    compose_affine,
    hed_jitter_affine,
    hue_saturation_matrix,
    perturb_stain_matrix,
    planckian_gains,
    stain_swap_affine,
)

log = logging.getLogger(__name__)

# name -> (shape of one crop's value, neutral value)
PARAM_SPECS: dict[str, tuple[tuple[int, ...], object]] = {
    "od_matrix": ((3, 3), np.eye(3)),
    "od_offset": ((3,), np.zeros(3)),
    "gains": ((3,), np.ones(3)),
    "gamma": ((), 1.0),
    "brightness": ((), 0.0),
    "contrast": ((), 1.0),
    "hs_matrix": ((3, 3), np.eye(3)),
    "jitter": ((4,), np.array([1.0, 1.0, 1.0, 0.0])),
    "jitter_order": ((4,), np.arange(4)),
    "gray": ((), False),
    "color_blur": ((), 0.0),
    "defocus": ((), 0.0),
    "blur": ((), 0.0),
    "downscale": ((), 1.0),
    "noise": ((), 0.0),
    "sharpen": ((), 0.0),
    "solarize": ((), False),
}

# operations of `AugmentConfig` the device path cannot do, by (family, probability field)
UNSUPPORTED = (("scanner", "jpeg_p"),)


def unsupported_ops(config: AugmentConfig) -> list[str]:
    """Probability fields of ``config`` that are on but not available on the device."""
    return [f"{fam}.{name}" for fam, name in UNSUPPORTED if getattr(getattr(config, fam), name)]


def neutral_params(n: int) -> dict[str, np.ndarray]:
    """Parameters of ``n`` crops that change nothing."""
    out = {}
    for name, (shape, value) in PARAM_SPECS.items():
        dtype = (
            np.int64
            if name == "jitter_order"
            else bool
            if shape == () and isinstance(value, bool)
            else np.float32
        )
        out[name] = np.broadcast_to(np.asarray(value, dtype=dtype), (n, *shape)).copy()
    return out


def _stain_params(
    config: AugmentConfig, rng: np.random.Generator, stains: np.ndarray | None, p: dict
) -> None:
    c = config.stain
    if stains is None and c.preset_p + c.macenko_p > 0:
        # Skipping the swap would silently train on a weaker augmentation than configured.
        raise ValueError(
            f"augment {config.name!r} re-stains (stain.preset_p={c.preset_p}, "
            f"stain.macenko_p={c.macenko_p}) but no stain matrix was given; pass "
            "stains=estimate_stain_matrix(tile), as DeviceMultiCrop.sample does"
        )
    affine = None
    u = rng.random()
    if u < c.preset_p + c.macenko_p:
        if u < c.preset_p:
            names = list(c.presets)
            target = STAIN_PRESETS[names[rng.integers(len(names))]]
            scale = rng.uniform(*c.preset_intensity, size=2)
        else:
            target = perturb_stain_matrix(stains, c.macenko_sigma, rng)
            scale = rng.uniform(*c.macenko_intensity, size=2)
        affine = stain_swap_affine(stains, target, scale)
    if rng.random() < c.hed_p:
        s = c.hed_sigma
        jitter = hed_jitter_affine(rng.uniform(1 - s, 1 + s, 3), rng.uniform(-s, s, 3))
        affine = jitter if affine is None else compose_affine(affine, jitter)
    if affine is not None:
        p["od_matrix"], p["od_offset"] = affine
    if rng.random() < c.planckian_p:
        p["gains"] = planckian_gains(rng.uniform(*c.temperature))
    if rng.random() < c.gamma_p:
        p["gamma"] = float(np.exp(rng.uniform(*np.log(c.gamma))))
    if rng.random() < c.brightness_contrast_p:
        p["brightness"] = rng.uniform(-c.brightness, c.brightness)
        p["contrast"] = rng.uniform(1 - c.contrast, 1 + c.contrast)
    if rng.random() < c.hue_saturation_p:
        hue = rng.uniform(-c.hue, c.hue)
        p["hs_matrix"] = hue_saturation_matrix(hue, rng.uniform(1 - c.saturation, 1 + c.saturation))


def _color_params(config: AugmentConfig, rng: np.random.Generator, view: str, p: dict) -> None:
    c = config.color
    if rng.random() < c.jitter_p:
        p["jitter"] = np.array(
            [
                rng.uniform(max(0.0, 1 - c.brightness), 1 + c.brightness),
                rng.uniform(max(0.0, 1 - c.contrast), 1 + c.contrast),
                rng.uniform(max(0.0, 1 - c.saturation), 1 + c.saturation),
                rng.uniform(-c.hue, c.hue),
            ]
        )
        p["jitter_order"] = rng.permutation(4)
    p["gray"] = bool(rng.random() < c.grayscale_p)
    if rng.random() < c.blur_p[VIEWS.index(view)]:
        p["color_blur"] = rng.uniform(*c.blur_sigma)
    p["solarize"] = bool(rng.random() < c.solarize_p[VIEWS.index(view)])


def _scanner_params(config: AugmentConfig, rng: np.random.Generator, p: dict) -> None:
    c = config.scanner
    u = rng.random()
    if u < c.defocus_p:
        p["defocus"] = rng.uniform(*c.defocus_radius)
    elif u < c.defocus_p + c.blur_p:
        p["blur"] = rng.uniform(*c.blur_sigma)
    if rng.random() < c.downscale_p:
        p["downscale"] = rng.uniform(*c.downscale)
    if rng.random() < c.noise_p:
        p["noise"] = rng.uniform(*c.noise_std)
    if rng.random() < c.sharpen_p:
        p["sharpen"] = rng.uniform(*c.sharpen_amount)


def sample_params(
    config: AugmentConfig | None,
    rng: np.random.Generator,
    view: str,
    stains: np.ndarray | None = None,
) -> dict[str, object]:
    """One crop's parameters (only the drawn ones; `stack_params` fills in neutral values).

    Args:
        config: the augmentation; None draws nothing (a clean view).
        rng: source of every draw.
        view: ``global1``, ``global2`` or ``local`` (per-view blur/solarise chances).
        stains: (2, 3) Macenko matrix of the tile; required when the config re-stains
            (``stain.preset_p`` or ``stain.macenko_p`` > 0), else a ValueError.
    """
    p: dict[str, object] = {}
    if config is not None:
        _stain_params(config, rng, stains, p)
        _color_params(config, rng, view, p)
        _scanner_params(config, rng, p)
    return p


def stack_params(rows: list[dict[str, object]]) -> dict[str, np.ndarray]:
    """Per-crop dicts -> one array per parameter with a leading crop dimension."""
    out = neutral_params(len(rows))
    for i, row in enumerate(rows):
        for name, value in row.items():
            out[name][i] = value
    return out

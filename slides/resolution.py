"""Microns per pixel and objective power from slide metadata."""

from __future__ import annotations

from collections.abc import Mapping

# Resolution tags outside this range are placeholders (72/96 dpi screen images), not microscopy.
PLAUSIBLE_MPP = (0.01, 100.0)

_MPP_KEYS = (
    ("openslide.mpp-x", "openslide.mpp-y"),
    ("aperio.MPP", "aperio.MPP"),
    (
        "mirax.LAYER_0_LEVEL_0_SECTION.MICROMETER_PER_PIXEL_X",
        "mirax.LAYER_0_LEVEL_0_SECTION.MICROMETER_PER_PIXEL_Y",
    ),
)
_OBJECTIVE_KEYS = ("openslide.objective-power", "aperio.AppMag", "hamamatsu.SourceLens")
# Microns per resolution unit, as OpenSlide and tifffile spell the unit.
_UNIT_MICRONS = {"centimeter": 1e4, "cm": 1e4, "millimeter": 1e3, "mm": 1e3, "inch": 25400.0}


def _as_float(value: object) -> float | None:
    """Parse a property value as a positive finite float, else None."""
    try:
        out = float(str(value).strip())
    except (TypeError, ValueError):
        return None
    return out if 0.0 < out < float("inf") else None


def plausible_mpp(mpp: float | None) -> float | None:
    """Return mpp when it looks like a microscope resolution, else None."""
    if mpp is None or not PLAUSIBLE_MPP[0] <= mpp <= PLAUSIBLE_MPP[1]:
        return None
    return mpp


def mpp_from_resolution(resolution: float | None, unit: str | None) -> float | None:
    """Microns per pixel from a TIFF-style resolution (pixels per unit) and unit name."""
    res = _as_float(resolution)
    microns = _UNIT_MICRONS.get(str(unit).strip().lower()) if unit is not None else None
    if res is None or microns is None:
        return None
    return plausible_mpp(microns / res)


def mpp_from_properties(props: Mapping[str, str]) -> float | None:
    """Level-0 microns per pixel from OpenSlide properties (mean of x and y), or None."""
    for key_x, key_y in _MPP_KEYS:
        mpp_x, mpp_y = _as_float(props.get(key_x)), _as_float(props.get(key_y))
        if mpp_x is not None and mpp_y is not None:
            return plausible_mpp((mpp_x + mpp_y) / 2.0)
        if mpp_x is not None:
            return plausible_mpp(mpp_x)
    unit = props.get("tiff.ResolutionUnit")
    res_x, res_y = (
        _as_float(props.get("tiff.XResolution")),
        _as_float(props.get("tiff.YResolution")),
    )
    if res_x is not None:
        mpp_x = mpp_from_resolution(res_x, unit)
        mpp_y = mpp_from_resolution(res_y, unit) if res_y is not None else mpp_x
        if mpp_x is not None and mpp_y is not None:
            return (mpp_x + mpp_y) / 2.0
    return None


def objective_from_properties(props: Mapping[str, str]) -> float | None:
    """Objective power (e.g. 20.0 for 20x) from OpenSlide properties, or None."""
    for key in _OBJECTIVE_KEYS:
        value = _as_float(props.get(key))
        if value is not None:
            return value
    return None


def magnification_from_mpp(mpp: float) -> int:
    """Nominal objective magnification for a resolution, with TRIDENT's thresholds."""
    for limit, mag in ((0.16, 80), (0.2, 60), (0.3, 40), (0.6, 20), (1.2, 10), (2.4, 5)):
        if mpp < limit:
            return mag
    return max(1, round(10.0 / mpp))

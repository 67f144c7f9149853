"""Register tiles of the same tissue across conditions by position, within a pixel tolerance."""

from collections.abc import Mapping

import numpy as np
from scipy.spatial import cKDTree


class RegistrationError(ValueError):
    """Tiles of a set of slides cannot be matched by position; the message says why."""


def register_tiles(
    slides: Mapping[str, tuple[np.ndarray, np.ndarray]], tolerance: int = 0
) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, int]]:
    """Keep the tile positions every slide has, matched within `tolerance` level-0 pixels.

    The same tissue scanned or stained differently rarely gives identical grids: tissue
    detection keeps different edge tiles, and images a few pixels apart in size lose a row or
    column. A tile of the first slide (by name) matches the nearest tile of each other slide
    whose x and y both lie within `tolerance`; tiles without a match in every slide are dropped.

    Args:
        slides: name -> (features (n, d), coords (n, 2) level-0 x, y).
        tolerance: largest per-axis offset, in pixels, of one tile position across slides; must
            stay below half the tile spacing so that a tile can match only one neighbour.

    Returns:
        features per slide in the order of the shared coords, the shared coords (the first
        slide's, sorted by x then y) and the number of tiles each slide lost.
    """
    if not slides:
        raise RegistrationError("no slides to register")
    if tolerance < 0:
        raise RegistrationError(f"tolerance must be >= 0 pixels, got {tolerance}")
    names = sorted(slides)
    ref_coords = slides[names[0]][1]
    order = np.lexsort((ref_coords[:, 1], ref_coords[:, 0]))
    ref_coords = np.asarray(ref_coords, dtype=np.int64)[order]
    if len(ref_coords) > 1 and tolerance > 0:
        spacing = cKDTree(ref_coords).query(ref_coords, k=2, p=np.inf)[0][:, 1].min()
        if 2 * tolerance >= spacing:
            raise RegistrationError(
                f"tolerance {tolerance} px is not below half the tile spacing ({spacing:g} px) "
                f"of {names[0]!r}: a tile could match two neighbours; lower the tolerance"
            )
    keep = np.ones(len(ref_coords), dtype=bool)
    rows: dict[str, np.ndarray] = {names[0]: order}
    for name in names[1:]:
        coords = np.asarray(slides[name][1], dtype=np.int64)
        if len(coords) == 0:
            keep[:] = False
            break
        dist, idx = cKDTree(coords).query(ref_coords, k=1, p=np.inf)
        keep &= dist <= tolerance
        rows[name] = idx
    if not keep.any():
        raise RegistrationError(
            f"the slides {names} share no tile position (within {tolerance} px): PLISM compares "
            "registered slides at the same tile coordinates; embed every slide on the same grid "
            "(e.g. the same `slides tile` coords) or raise the tolerance"
        )
    feats = {name: np.asarray(slides[name][0])[rows[name][keep]] for name in names}
    dropped = {name: len(slides[name][1]) - int(keep.sum()) for name in names}
    return feats, ref_coords[keep], dropped

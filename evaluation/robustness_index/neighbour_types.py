"""SS / SO / OS / OO typing of neighbours: same or other biological class x same or other centre."""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class NeighbourTypes:
    """(n, k) boolean masks, one per type, for each query's neighbours in order (nearest first).

    Naming follows PathoROB (`calculate_fractions`): the first letter is the biological class,
    the second the centre, S = same as the query, O = other.
    """

    ss: np.ndarray
    so: np.ndarray
    os: np.ndarray
    oo: np.ndarray


def neighbour_types(biology: np.ndarray, centre: np.ndarray, index: np.ndarray) -> NeighbourTypes:
    """Type each neighbour ``index[i, j]`` of query i.

    Args:
        biology: (n,) integer biological-class codes.
        centre: (n,) integer centre / scanner / site codes.
        index: (n, k) neighbour rows.
    """
    same_bio = biology[index] == biology[:, None]
    same_cen = centre[index] == centre[:, None]
    return NeighbourTypes(
        ss=same_bio & same_cen,
        so=same_bio & ~same_cen,
        os=~same_bio & same_cen,
        oo=~same_bio & ~same_cen,
    )

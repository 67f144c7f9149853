"""Neighbour-based robustness metrics: PathoROB's Robustness Index (RI), paired 2x2 evaluation."""

from evaluation.robustness_index.index import (
    PATHOROB_COMMIT,
    bootstrap_ri,
    ri_curve,
    robustness_index,
)
from evaluation.robustness_index.inputs import CodedInputs, code_inputs
from evaluation.robustness_index.k_choice import (
    PATHOROB_DEFAULT_K,
    PATHOROB_K_GRID_MAX,
    k_grid,
    knn_balanced_accuracy,
)
from evaluation.robustness_index.neighbour_types import NeighbourTypes, neighbour_types
from evaluation.robustness_index.neighbours import Neighbours, usable_counts, usable_neighbours
from evaluation.robustness_index.paired import paired_robustness_index

__all__ = [
    "PATHOROB_COMMIT",
    "PATHOROB_DEFAULT_K",
    "PATHOROB_K_GRID_MAX",
    "CodedInputs",
    "NeighbourTypes",
    "Neighbours",
    "bootstrap_ri",
    "code_inputs",
    "k_grid",
    "knn_balanced_accuracy",
    "neighbour_types",
    "paired_robustness_index",
    "ri_curve",
    "robustness_index",
    "usable_counts",
    "usable_neighbours",
]

"""Robustness metrics: PathoROB's Robustness Index, APD and clustering score; croma's MaRI / CRoMa / nIPD."""

from evaluation.robustness_index.apd import apd
from evaluation.robustness_index.clustering import clustering_score
from evaluation.robustness_index.downstream import probe_robustness
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
from evaluation.robustness_index.margin import CROMA_M, croma_per_sample, croma_summary
from evaluation.robustness_index.mari import (
    TAU_FALLBACK,
    mari_from_neighbours,
    median_typed_distance,
)
from evaluation.robustness_index.neighbour_types import NeighbourTypes, neighbour_types
from evaluation.robustness_index.neighbours import Neighbours, usable_counts, usable_neighbours
from evaluation.robustness_index.nipd import nipd
from evaluation.robustness_index.paired import paired_robustness_index
from evaluation.robustness_index.probe_schedule import (
    PATHOROB_APD_COMMIT,
    cramers_v,
    pathorob_schedule,
)
from evaluation.robustness_index.probe_sweep import probe_sweep
from evaluation.robustness_index.suite import robustness_metrics
from evaluation.robustness_index.tail import confounder_dominant_fraction, tail_mean

__all__ = [
    "CROMA_M",
    "PATHOROB_APD_COMMIT",
    "PATHOROB_COMMIT",
    "PATHOROB_DEFAULT_K",
    "PATHOROB_K_GRID_MAX",
    "TAU_FALLBACK",
    "CodedInputs",
    "NeighbourTypes",
    "Neighbours",
    "apd",
    "bootstrap_ri",
    "clustering_score",
    "code_inputs",
    "confounder_dominant_fraction",
    "cramers_v",
    "croma_per_sample",
    "croma_summary",
    "k_grid",
    "knn_balanced_accuracy",
    "mari_from_neighbours",
    "median_typed_distance",
    "neighbour_types",
    "nipd",
    "paired_robustness_index",
    "pathorob_schedule",
    "probe_robustness",
    "probe_sweep",
    "ri_curve",
    "robustness_index",
    "robustness_metrics",
    "tail_mean",
    "usable_counts",
    "usable_neighbours",
]

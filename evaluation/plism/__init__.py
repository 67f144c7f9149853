"""PLISM robustness metrics: per-pair cosine/top-k, grouped aggregates, leaderboard, file layouts."""

from evaluation.plism.groups import (
    ARITHMETICS,
    GROUPS,
    PlismResult,
    aggregate,
    evaluate_slides,
    leaderboard_gap,
    leaderboard_score,
    pair_group,
    slide_pairs,
    summarise,
    usable_top_k,
)
from evaluation.plism.io import (
    SlideSetError,
    find_slide_files,
    load_slide_set,
    parse_condition,
    read_conditions_csv,
    read_encoder_name,
    read_h5_features,
    read_plismbench_features,
    write_plismbench_layout,
)
from evaluation.plism.pairs import DEFAULT_TOP_K, pair_metrics
from evaluation.plism.plismbench16 import float16_matmul, plismbench_pair_metrics

__all__ = [
    "ARITHMETICS",
    "DEFAULT_TOP_K",
    "GROUPS",
    "PlismResult",
    "SlideSetError",
    "aggregate",
    "evaluate_slides",
    "find_slide_files",
    "float16_matmul",
    "leaderboard_gap",
    "leaderboard_score",
    "load_slide_set",
    "pair_group",
    "pair_metrics",
    "parse_condition",
    "plismbench_pair_metrics",
    "read_conditions_csv",
    "read_encoder_name",
    "read_h5_features",
    "read_plismbench_features",
    "slide_pairs",
    "summarise",
    "usable_top_k",
    "write_plismbench_layout",
]

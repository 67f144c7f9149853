"""PLISM slide pairs grouped by staining/scanner, aggregate statistics and the leaderboard score."""

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from evaluation.plism.pairs import DEFAULT_TOP_K, pair_metrics
from evaluation.plism.plismbench16 import plismbench_pair_metrics

ARITHMETICS = ("torch", "plismbench")
"""torch: pair_metrics in the given dtype; plismbench: its numpy float16 arithmetic, bit for bit."""

GROUPS = ("all", "cross_scanner", "cross_staining", "cross_both")
"""Group names; plismbench calls them all / inter-scanner / inter-staining / inter-scanner, inter-staining."""

Condition = tuple[str, str]
"""(staining, scanner) of one slide."""


def pair_group(a: Condition, b: Condition) -> str:
    """Group of a slide pair: cross_scanner (same staining), cross_staining (same scanner), cross_both."""
    same_staining, same_scanner = a[0] == b[0], a[1] == b[1]
    if same_staining and same_scanner:
        return "same_condition"
    if same_staining:
        return "cross_scanner"
    if same_scanner:
        return "cross_staining"
    return "cross_both"


def slide_pairs(conditions: Mapping[str, Condition]) -> list[tuple[str, str, str]]:
    """All unordered slide pairs as (slide_a, slide_b, group), in sorted slide order."""
    names = sorted(conditions)
    return [
        (a, b, pair_group(conditions[a], conditions[b]))
        for a, b in itertools.combinations(names, 2)
    ]


def aggregate(values: Sequence[float]) -> dict[str, float]:
    """mean, std (population, as np.std), median and IQR (np.quantile 0.75 - 0.25), as plismbench."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return {
            "mean": float("nan"),
            "std": float("nan"),
            "median": float("nan"),
            "iqr": float("nan"),
            "n": 0,
        }
    q1, q3 = np.quantile(v, [0.25, 0.75])
    return {
        "mean": float(v.mean()),
        "std": float(v.std()),
        "median": float(np.median(v)),
        "iqr": float(q3 - q1),
        "q1": float(q1),
        "q3": float(q3),
        "n": int(v.size),
    }


def leaderboard_score(
    summary: Mapping[str, Mapping[str, Mapping[str, float]]], decimals: int | None = None
) -> float:
    """Mean of four medians: cos-sim over all pairs, top-10 cross-scanner, cross-staining, cross-both.

    Args:
        summary: output of :func:`summarise`.
        decimals: None for full precision; 3 rounds each median and then the score, as
            plismbench's results table (pandas ``.round(3)``) and its leaderboard print them.
    """
    try:
        medians = [
            summary["all"]["cosine_similarity"]["median"],
            summary["cross_scanner"]["top_10_accuracy"]["median"],
            summary["cross_staining"]["top_10_accuracy"]["median"],
            summary["cross_both"]["top_10_accuracy"]["median"],
        ]
    except KeyError as err:
        raise ValueError(
            f"the leaderboard needs top_10_accuracy and all four groups; missing {err}"
        ) from err
    if decimals is None:
        return float(np.mean(medians))
    return float(np.round(np.mean(np.round(medians, decimals)), decimals))


@dataclass
class PlismResult:
    """Per-pair rows, per-group aggregates and the leaderboard score of one feature extractor."""

    rows: list[dict[str, object]]
    summary: dict[str, dict[str, dict[str, float]]]
    leaderboard: float | None
    metric_names: list[str] = field(default_factory=list)
    leaderboard_3dp: float | None = None
    """The score with plismbench's rounding: medians to 3 decimals, then the mean to 3 decimals."""
    leaderboard_note: str | None = None
    """Why `leaderboard` is None (e.g. "no cross-staining pairs"); None when there is a score."""


def usable_top_k(top_k: Sequence[int], n_tiles: int) -> tuple[list[int], str | None]:
    """The k values that `n_tiles` registered tiles allow (k <= 2n - 1), and a note on the rest.

    Top-k retrieves among the other 2n - 1 tiles of a slide pair, so a small set (a region
    imaged by a few scanners) cannot have top-10 with 5 tiles; such k are dropped, not an error.
    """
    limit = 2 * n_tiles - 1
    kept = [int(k) for k in top_k if 1 <= k <= limit]
    dropped = [int(k) for k in top_k if k not in kept]
    if not dropped:
        return kept, None
    return kept, (
        f"top-k for k = {dropped} skipped: {n_tiles} tiles per slide give at most "
        f"{limit} neighbours (k <= 2n - 1); the leaderboard's top-10 needs at least 6 tiles"
    )


def leaderboard_gap(
    summary: Mapping[str, Mapping[str, Mapping[str, object]]], top_k: Sequence[int]
) -> str | None:
    """Why the leaderboard score cannot be computed from `summary`, or None when it can."""
    if 10 not in top_k:
        return "needs top-10 accuracy (--top-k without 10, or fewer than 6 tiles per slide)"
    empty = [
        g.replace("_", "-")
        for g in GROUPS[1:]
        if not summary.get(g, {}).get("top_10_accuracy", {}).get("n")
    ]
    if empty:
        return (
            f"no {' / '.join(empty)} pairs: the score needs slides that differ in scanner, in "
            "staining and in both (each condition's staining and scanner come from its name "
            "'<staining>_<scanner>' or the conditions CSV)"
        )
    return None


def summarise(
    rows: Sequence[Mapping[str, object]],
    metric_names: Sequence[str],
    decimals: int | None = None,
) -> dict[str, dict[str, dict[str, float]]]:
    """Aggregate per-pair rows into {group: {metric: {mean, std, median, iqr, n}}}.

    ``decimals=3`` rounds every statistic as plismbench's results table does (``.round(3)``).
    """
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for group in GROUPS:
        chosen = [r for r in rows if group == "all" or r["group"] == group]
        summary[group] = {m: aggregate([float(r[m]) for r in chosen]) for m in metric_names}
        if decimals is not None:
            for stats in summary[group].values():
                for key, value in stats.items():
                    if key != "n":
                        stats[key] = float(np.round(value, decimals))
    return summary


def evaluate_slides(
    features: Mapping[str, np.ndarray | torch.Tensor],
    conditions: Mapping[str, Condition],
    top_k: Sequence[int] = DEFAULT_TOP_K,
    dtype: torch.dtype = torch.float32,
    chunk_size: int = 2048,
    device: str | torch.device | None = None,
    progress: bool = True,
    on_pair: Callable[[dict[str, object]], None] | None = None,
    arithmetic: str = "torch",
) -> PlismResult:
    """PLISM metrics over all unordered pairs of a set of registered slides.

    Args:
        features: slide name -> (n, d) features; every slide has the same tiles in the same order.
        conditions: slide name -> (staining, scanner).
        top_k: values of k for top-k accuracy.
        dtype: compute dtype passed to :func:`pair_metrics`.
        chunk_size: block size passed to :func:`pair_metrics`.
        device: compute device.
        progress: show a tqdm bar over pairs.
        on_pair: called with each finished row (e.g. to log or checkpoint).
        arithmetic: ``"torch"`` (:func:`pair_metrics` in ``dtype``) or ``"plismbench"``
            (:func:`plismbench_pair_metrics`: plismbench's float16 numbers exactly; ignores dtype).

    Returns:
        A :class:`PlismResult`; leaderboard is None when k = 10 or a group is missing.
    """
    if arithmetic not in ARITHMETICS:
        raise ValueError(f"arithmetic must be one of {ARITHMETICS}, got {arithmetic!r}")
    missing = sorted(set(features) ^ set(conditions))
    if missing:
        raise ValueError(f"slides without both features and a (staining, scanner) label: {missing}")
    if len(features) < 2:
        raise ValueError(f"need at least two slides, got {len(features)}")
    pairs = slide_pairs(conditions)
    metric_names = ["cosine_similarity"] + [f"top_{k}_accuracy" for k in top_k]
    rows: list[dict[str, object]] = []
    for a, b, group in tqdm(pairs, desc="PLISM pairs", disable=not progress):
        if arithmetic == "plismbench":
            metrics = plismbench_pair_metrics(
                features[a], features[b], top_k, chunk_size=chunk_size, device=device
            )
        else:
            metrics = pair_metrics(
                features[a], features[b], top_k, dtype=dtype, chunk_size=chunk_size, device=device
            )
        row: dict[str, object] = {
            "slide_a": a,
            "slide_b": b,
            "staining_a": conditions[a][0],
            "scanner_a": conditions[a][1],
            "staining_b": conditions[b][0],
            "scanner_b": conditions[b][1],
            "group": group,
            **metrics,
        }
        rows.append(row)
        if on_pair is not None:
            on_pair(row)
    summary = summarise(rows, metric_names)
    gap = leaderboard_gap(summary, top_k)
    has_all = gap is None
    score = leaderboard_score(summary) if has_all else None
    score_3dp = leaderboard_score(summary, decimals=3) if has_all else None
    return PlismResult(
        rows=rows,
        summary=summary,
        leaderboard=score,
        metric_names=metric_names,
        leaderboard_3dp=score_3dp,
        leaderboard_note=gap,
    )

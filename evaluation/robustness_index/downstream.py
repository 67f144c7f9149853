"""APD and nIPD of one encoder from a manifest-style cohort: design choice, row layout, one probe sweep."""

from collections.abc import Sequence

import numpy as np

from evaluation.robustness_index.apd import apd
from evaluation.robustness_index.inputs import code_inputs
from evaluation.robustness_index.nipd import nipd
from evaluation.robustness_index.probe_schedule import (
    Split,
    cramers_v,
    tcga_split,
    training_table,
    two_centre_split,
)
from evaluation.robustness_index.probe_sweep import probe_sweep


def choose_design(
    n_centres: int, n_classes: int, min_slides: int, rows_per_slide: int
) -> tuple[str | None, list[Split], str | None]:
    """(design name, schedule, reason it cannot run or None).

    Two centres: PathoROB's camelyon / tolkach_esca design with ``half = (m - 2) // 2``
    balanced training slides per cell, m the fewest slides of any cell (camelyon's 17 give
    7, tolkach_esca's 9 give 3: PathoROB's own numbers), leaving one validation slide and at
    least one test slide. Four centres x four classes: PathoROB's tcga schedule (10 slides
    per cell at least; PathoROB has 12). Anything else has no PathoROB design.
    """
    if n_classes < 2:
        return None, [], "only one biological class: no probe to train"
    if n_centres < 2:
        return None, [], "only one centre: no centre-class correlation to raise"
    if n_centres == 2:
        half = (min_slides - 2) // 2
        if half < 1:
            return (
                "two_centre",
                [],
                f"too few slides per centre-class cell ({min_slides}): the APD design needs "
                "at least 4 (2 balanced training slides, 1 validation, 1 test)",
            )
        return (
            "two_centre",
            [two_centre_split(n_classes, half, s, rows_per_slide) for s in range(half + 1)],
            None,
        )
    if n_centres == 4 and n_classes == 4:
        if min_slides < 10:
            return (
                "tcga",
                [],
                f"too few slides per centre-class cell ({min_slides}): PathoROB's tcga "
                "schedule needs at least 10 (8 training, 1 validation, 1 test)",
            )
        return "tcga", [tcga_split(s, rows_per_slide) for s in range(7)], None
    return (
        None,
        [],
        f"no PathoROB APD design for {n_centres} centres x {n_classes} classes (it has 2 "
        "centres x any classes, or 4 x 4); pick two centres (--apd-centres)",
    )


def layout(
    biology: np.ndarray, centre: np.ndarray, slide: np.ndarray, rows_per_slide: int | None
) -> tuple[np.ndarray, int, int, list[str]]:
    """Rows to use, in (centre, class, slide) blocks of equal size, plus that size, the fewest
    slides of any cell and warnings.

    PathoROB's cohorts hold the same number of patches per slide and cut slides as
    consecutive chunks; here each (cell, slide) keeps its first `rows_per_slide` rows
    (default: the fewest any slide has) in manifest order, slides in order of first row.
    """
    warnings = []
    blocks: dict[tuple[int, int], dict[int, list[int]]] = {}
    for row, (c, b, s) in enumerate(
        zip(centre.tolist(), biology.tolist(), slide.tolist(), strict=True)
    ):
        blocks.setdefault((c, b), {}).setdefault(s, []).append(row)
    sizes = [len(r) for cell in blocks.values() for r in cell.values()]
    r = min(sizes) if rows_per_slide is None else rows_per_slide
    seen: dict[int, set] = {}
    for key, cell in blocks.items():
        for s in cell:
            seen.setdefault(s, set()).add(key)
    shared = [s for s, keys in seen.items() if len(keys) > 1]
    if shared:
        warnings.append(
            f"{len(shared)} slide(s) span several centre-class cells: the same slide can be "
            "trained and tested on (PathoROB draws case-level splits for tolkach_esca only)"
        )
    order, dropped = [], 0
    for key in sorted(blocks):
        for rows in blocks[key].values():
            kept = rows[:r] if len(rows) >= r else []
            order += kept
            dropped += len(rows) - len(kept)
    if dropped:
        warnings.append(f"{dropped} row(s) left out to give every slide {r} rows")
    min_slides = min(
        sum(len(rows) >= r for rows in blocks.get((c, b), {}).values())
        for c in np.unique(centre)
        for b in np.unique(biology)
    )
    return np.asarray(order, dtype=np.int64), r, int(min_slides), warnings


def probe_robustness(
    embeddings: np.ndarray,
    biology: Sequence,
    centre: Sequence,
    slide: Sequence,
    iterations: int = 20,
    seed: int = 1000,
    rows_per_slide: int | None = None,
) -> dict:
    """APD (PathoROB) and nIPD (croma) from one confounder-biased probe sweep.

    The sweep (`probe_sweep`) trains logistic probes on training sets whose centre-class
    correlation rises split by split (`choose_design`), scored on fixed held-out slides.
    ``apd``: `apd.apd` of the accuracy matrix. ``nipd``: `nipd.nipd` with V the Cramér's V
    of each split's training counts (`probe_schedule.cramers_v`) and chance 1 / classes.
    Where the design cannot run, both are NaN and ``note`` says why.

    Args:
        biology, centre, slide: per-row labels; slides are never split across training and
            test.
        iterations: replicates (PathoROB: 20).
        seed: seed of the replicate seeds (PathoROB: 1000).
        rows_per_slide: rows kept per slide (default: the fewest any slide has).
    """
    coded = code_inputs(embeddings, biology, centre, slide, None)
    nan = float("nan")
    out = {
        "apd": nan,
        "nipd": nan,
        "design": None,
        "iterations": iterations,
        "n_classes": int(coded.biology_names.size),
        "n_centres": int(coded.centre_names.size),
        "warnings": [],
        "note": None,
    }
    if iterations < 1:
        out["note"] = f"skipped: {iterations} probe iterations"
        return out
    order, r, min_slides, warnings = layout(
        coded.biology, coded.centre, coded.slide, rows_per_slide
    )
    out["warnings"] += warnings
    out.update(rows_per_slide=r, min_slides_per_cell=min_slides)
    design, schedule, reason = choose_design(out["n_centres"], out["n_classes"], min_slides, r)
    out["design"] = design
    if reason is not None:
        out["note"] = reason
        return out
    acc = probe_sweep(
        coded.embeddings[order],
        coded.centre[order],
        coded.biology[order],
        schedule,
        r,
        iterations,
        seed,
    )
    v = [cramers_v(training_table(s, out["n_centres"], out["n_classes"])) for s in schedule]
    chance = 1.0 / out["n_classes"]
    out.update(accuracies=acc.tolist(), cramers_v=v, chance=chance, apd=apd(acc))
    try:
        out["nipd"] = nipd(acc, np.asarray(v), chance)
    except ValueError as err:
        out["note"] = f"nIPD undefined: {err}"
    return out

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
from evaluation.robustness_index.probe_sweep import probe_sweep_tests


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


def recode(codes: np.ndarray, names: np.ndarray, order: Sequence | None, what: str) -> np.ndarray:
    """Codes following `order` (PathoROB's list of names) instead of the sorted names.

    Raises:
        ValueError: `order` does not name exactly the values present.
    """
    if order is None:
        return codes
    order = [str(v) for v in order]
    if sorted(order) != sorted(names.tolist()):
        raise ValueError(f"{what} order {order} does not list exactly {names.tolist()}")
    return np.array([order.index(n) for n in names], dtype=np.int64)[codes]


def probe_robustness(
    embeddings: np.ndarray,
    biology: Sequence,
    centre: Sequence,
    slide: Sequence,
    iterations: int = 20,
    seed: int = 1000,
    rows_per_slide: int | None = None,
    ood_embeddings: np.ndarray | None = None,
    ood_biology: Sequence | None = None,
    case_splits: dict | None = None,
    class_order: Sequence | None = None,
    centre_order: Sequence | None = None,
) -> dict:
    """APD (PathoROB, in- and out-of-domain) and nIPD (croma) from one confounder-biased
    probe sweep.

    The sweep (`probe_sweep_tests`) trains logistic probes on training sets whose
    centre-class correlation rises split by split (`choose_design`), scored on fixed
    held-out slides of the training centres (in-domain) and, when given, on every row of
    centres never trained on (out-of-domain; PathoROB's ``subset == "OOD"`` rows).
    ``apd`` / ``apd_ood``: `apd.apd` of each accuracy matrix, PathoROB's ``apd_id`` and
    ``apd_ood`` (``np.mean(compute_apd(...))``, ``pathorob/apd/apd.py`` @5472795).
    ``nipd``: `nipd.nipd` of the in-domain matrix with V the Cramér's V of each split's
    training counts (`probe_schedule.cramers_v`) and chance 1 / classes. Where the design
    cannot run, all are NaN and ``note`` says why; ``ood_note`` says why ``apd_ood`` alone
    is NaN.

    Args:
        biology, centre, slide: per-row labels of the training centres; slides are never
            split across training and test.
        iterations: replicates (PathoROB: 20).
        seed: seed of the replicate seeds (PathoROB: 1000).
        rows_per_slide: rows kept per slide (default: the fewest any slide has).
        ood_embeddings, ood_biology: rows of the out-of-domain centres (all are tested).
        case_splits: PathoROB's case-level splits by centre name (its
            ``pathorob/resources/tolkach_splits.json``: ``{"train"|"test": {centre: [[case,
            ...], ...]}}``); slides then name cases, and a case spans several classes.
        class_order, centre_order: PathoROB's lists of class / centre names, which fix the
            codes and so which classes each centre favours (default: sorted names; PathoROB
            lists tolkach_esca's classes unsorted, `PATHOROB_APD_CLASSES`).
    """
    coded = code_inputs(embeddings, biology, centre, slide, None)
    nan = float("nan")
    out = {
        "apd": nan,
        "apd_ood": nan,
        "nipd": nan,
        "design": None,
        "iterations": iterations,
        "n_classes": int(coded.biology_names.size),
        "n_centres": int(coded.centre_names.size),
        "n_ood": 0 if ood_embeddings is None else len(ood_embeddings),
        "case_splits": case_splits is not None,
        "warnings": [],
        "note": None,
        "ood_note": None,
    }
    if iterations < 1:
        out["note"] = f"skipped: {iterations} probe iterations"
        return out
    biology_codes = recode(coded.biology, coded.biology_names, class_order, "class")
    centre_codes = recode(coded.centre, coded.centre_names, centre_order, "centre")
    biology_names = list(class_order) if class_order else coded.biology_names.tolist()
    centre_names = list(centre_order) if centre_order else coded.centre_names.tolist()
    order, r, min_slides, warnings = layout(
        biology_codes, centre_codes, coded.slide, rows_per_slide
    )
    if case_splits is not None:
        warnings = [w for w in warnings if "span several" not in w]
    out["warnings"] += warnings
    out.update(rows_per_slide=r, min_slides_per_cell=min_slides)
    design, schedule, reason = choose_design(out["n_centres"], out["n_classes"], min_slides, r)
    out["design"] = design
    if reason is not None:
        out["note"] = reason
        return out
    extra, ood_reason = ood_test(ood_embeddings, ood_biology, biology_names, coded.embeddings)
    out["ood_note"] = ood_reason
    splits = None
    if case_splits is not None:
        splits = case_splits_by_code(case_splits, centre_names)
    acc = probe_sweep_tests(
        coded.embeddings[order],
        centre_codes[order],
        biology_codes[order],
        schedule,
        r,
        iterations,
        seed,
        extra_tests=extra,
        case_splits=splits,
        slide=np.asarray(slide, dtype=object)[order] if splits is not None else None,
    )
    v = [cramers_v(training_table(s, out["n_centres"], out["n_classes"])) for s in schedule]
    chance = 1.0 / out["n_classes"]
    out.update(accuracies=acc[0].tolist(), cramers_v=v, chance=chance, apd=apd(acc[0]))
    if extra:
        out.update(ood_accuracies=acc[1].tolist(), apd_ood=apd(acc[1]))
    try:
        out["nipd"] = nipd(acc[0], np.asarray(v), chance)
    except ValueError as err:
        out["note"] = f"nIPD undefined: {err}"
    return out


def ood_test(
    x: np.ndarray | None, biology: Sequence | None, names: list[str], reference: np.ndarray
) -> tuple[list[tuple[np.ndarray, np.ndarray]], str | None]:
    """The out-of-domain test set as [(x, class codes)], or [] and the reason there is none.

    Raises:
        ValueError: rows and labels differ in number, or the rows are not finite.
    """
    if x is None or len(x) == 0:
        return [], "no out-of-domain rows (centres never trained on) were given"
    x = np.asarray(x, dtype=reference.dtype)
    labels = np.asarray(biology, dtype=object).astype(str)
    if x.ndim != 2 or x.shape[1] != reference.shape[1] or len(labels) != len(x):
        raise ValueError(
            f"out-of-domain rows {x.shape} and {len(labels)} labels do not match the "
            f"in-domain width {reference.shape[1]}"
        )
    if not np.isfinite(x).all():
        raise ValueError("out-of-domain embeddings have NaN/inf")
    unknown = sorted(set(labels.tolist()) - set(names))
    if unknown:
        return [], f"out-of-domain classes {unknown} are not among the trained classes {names}"
    return [(x, np.array([names.index(b) for b in labels], dtype=np.int64))], None


def case_splits_by_code(splits: dict, centre_names: list[str]) -> dict:
    """PathoROB's ``{"train"|"test": {centre: [[case, ...], ...]}}`` keyed by centre code.

    Raises:
        ValueError: a training centre has no splits, or its train and test lists differ
            in number.
    """
    out: dict = {"train": {}, "test": {}}
    for code, name in enumerate(centre_names):
        if name not in splits.get("train", {}) or name not in splits.get("test", {}):
            raise ValueError(f"case splits have no entry for centre {name!r}")
        if len(splits["train"][name]) != len(splits["test"][name]):
            raise ValueError(f"case splits of {name!r}: train and test lists differ in number")
        out["train"][code] = splits["train"][name]
        out["test"][code] = splits["test"][name]
    return out

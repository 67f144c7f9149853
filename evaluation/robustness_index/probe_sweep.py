"""PathoROB's confounder-biased probe sweep: the (splits x replicates) accuracy matrix APD and nIPD reduce."""

import random
from collections.abc import Sequence

import numpy as np

from evaluation.robustness_index.logistic_probe import probe_scores
from evaluation.robustness_index.probe_schedule import Split


def shuffle_cells(cells: dict, rows_per_slide: int, rng: random.Random) -> None:
    """Reorder each cell's rows by whole slides (chunks of `rows_per_slide`), in place.

    Cells in (centre, class) order, one ``rng.shuffle`` each, and the order persists into
    the next replicate: both as PathoROB's `compute` loop.
    """
    for key in sorted(cells):
        rows = cells[key]
        slides = [rows[k : k + rows_per_slide] for k in range(0, len(rows), rows_per_slide)]
        rng.shuffle(slides)
        cells[key] = [r for s in slides for r in s]


def split_rows(cells: dict, split: Split, rows_per_slide: int) -> tuple[list, list, list]:
    """Training, validation and held-out row indices of one split.

    Training: the first `take` rows of each cell; validation: the next
    ``int(take / max_train_slides)``; held out: every cell from row
    ``(max_train_slides + 1) * rows_per_slide`` on, the same rows at every split.
    """
    plan, max_train = split
    train = [r for i, j, take in plan for r in cells[(i, j)][:take]]
    val = [r for i, j, take in plan for r in cells[(i, j)][take : take + int(take / max_train)]]
    first_test = (max_train + 1) * rows_per_slide
    test = [r for key in sorted(cells) for r in cells[key][first_test:]]
    return train, val, test


def move_test_cases(cells: dict, rows_per_slide: int, slide: np.ndarray, test_cases: dict) -> None:
    """Move each cell's test-case slides to its end, in place: PathoROB's case-level split.

    `test_cases` maps a centre code to the case ids drawn as its test cases. As PathoROB's
    tolkach_esca branch of `compute`, each chunk is named by its first row's slide (case)
    and the cases are moved in the iteration order of ``set(test_cases) & set(case_order)``
    (Python's set order, the same in both codes within one process).
    """
    for key in sorted(cells):
        rows = cells[key]
        slides = [rows[k : k + rows_per_slide] for k in range(0, len(rows), rows_per_slide)]
        case_order = [slide[s[0]] for s in slides]
        for case in list(set(test_cases[key[0]]) & set(case_order)):
            slides.append(slides.pop([slide[s[0]] for s in slides].index(case)))
        cells[key] = [r for s in slides for r in s]


def probe_sweep_tests(
    embeddings: np.ndarray,
    centre: np.ndarray,
    biology: np.ndarray,
    schedule: list[Split],
    rows_per_slide: int,
    iterations: int = 20,
    seed: int = 1000,
    extra_tests: Sequence[tuple[np.ndarray, np.ndarray]] = (),
    case_splits: dict | None = None,
    slide: np.ndarray | None = None,
) -> list[np.ndarray]:
    """(n_splits, iterations) balanced accuracies of PathoROB's APD sweep, one matrix per
    test set: the in-domain held-out slides first, then each of `extra_tests`.

    Source: PathoROB ``pathorob/apd/apd.py`` `compute` at commit ``5472795`` (the same
    loop croma 1.0.1 vendors as `croma.downstream.probe_sweep`, in-domain only).
    ``random.seed(seed)`` draws `iterations` replicate seeds from ``range(10000)`` without
    replacement; each replicate seeds ``random`` again, shuffles every (centre, class) cell
    by whole slides and trains one probe per split (`probe_scores`) on the split's rows,
    scored on the held-out tail and on every extra test set (PathoROB's out-of-domain
    set: all rows of the test centres, ``subset == "OOD"``; the same probe scores both).
    Row 0 is the balanced split.

    Args:
        embeddings: (n, d) rows; each cell's rows in slide order, `rows_per_slide`
            consecutive rows per slide. The dtype is kept (PathoROB fits its float32
            features as float32; croma casts to float64).
        centre: (n,) integer centre codes, the schedule's first index.
        biology: (n,) integer class codes, the schedule's second index.
        schedule: splits from `probe_schedule`, balanced first.
        rows_per_slide: rows of one slide.
        iterations: replicates (PathoROB: 20).
        seed: seed of the replicate seeds (PathoROB: 1000).
        extra_tests: (x, y) test sets never trained on, e.g. the out-of-domain centres.
        case_splits: PathoROB's case-level splits (its ``tolkach_splits.json``) with the
            centre names replaced by centre codes: ``{"train": {code: [cases, ...]},
            "test": {code: [cases, ...]}}``. Each replicate first draws one split per
            centre (``random.randint``, before the shuffles, as PathoROB) and moves that
            split's test cases to the end of every cell, so they are only tested on.
        slide: (n,) slide (case) names, needed with `case_splits`.

    Raises:
        ValueError: some split leaves no training, validation or test rows.
    """
    x = np.asarray(embeddings)
    if case_splits is not None and slide is None:
        raise ValueError("case_splits needs the slide (case) names")
    cells: dict[tuple[int, int], list[int]] = {}
    for row, key in enumerate(zip(centre.tolist(), biology.tolist(), strict=True)):
        cells.setdefault(key, []).append(row)
    for plan, _ in schedule:
        for i, j, _take in plan:
            cells.setdefault((i, j), [])
    centres = sorted({i for i, _ in cells})
    seeds = random.Random(seed).sample(range(10000), iterations)
    out = np.empty((1 + len(extra_tests), len(schedule), iterations))
    for col, s in enumerate(seeds):
        rng = random.Random(s)
        if case_splits is not None:
            drawn = [rng.randint(0, len(case_splits["train"][i]) - 1) for i in centres]
            test_cases = {i: case_splits["test"][i][d] for i, d in zip(centres, drawn, strict=True)}
        shuffle_cells(cells, rows_per_slide, rng)
        if case_splits is not None:
            move_test_cases(cells, rows_per_slide, slide, test_cases)
        for row, split in enumerate(schedule):
            train, val, test = split_rows(cells, split, rows_per_slide)
            if not (train and val and test):
                raise ValueError(
                    f"split {row} leaves {len(train)} training, {len(val)} validation and "
                    f"{len(test)} test rows"
                )
            out[:, row, col] = probe_scores(
                x[train],
                biology[train],
                x[val],
                biology[val],
                [(x[test], biology[test]), *extra_tests],
            )
    return list(out)


def probe_sweep(
    embeddings: np.ndarray,
    centre: np.ndarray,
    biology: np.ndarray,
    schedule: list[Split],
    rows_per_slide: int,
    iterations: int = 20,
    seed: int = 1000,
) -> np.ndarray:
    """(n_splits, iterations) in-domain balanced accuracies of PathoROB's APD sweep:
    `probe_sweep_tests` without extra test sets or case splits."""
    return probe_sweep_tests(
        embeddings, centre, biology, schedule, rows_per_slide, iterations, seed
    )[0]

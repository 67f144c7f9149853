"""Training compositions of PathoROB's APD probe sweep, from balanced to fully confounded, and their Cramér's V."""

import numpy as np

# PathoROB commit whose APD code this package follows (bifold-pathomics/PathoROB,
# pathorob/apd/apd.py, pathorob/apd/utils.py; train_model.py unchanged since 405f8af).
PATHOROB_APD_COMMIT = "5472795d9433c12d64a7380ad19e4e78c2395566"

# PathoROB `load_data`: (splits, slides per centre-class cell, patches per slide) per dataset.
PATHOROB_APD_DESIGN = {"camelyon": (8, 17, 300), "tcga": (7, 12, 30), "tolkach_esca": (4, 9, 100)}

# PathoROB `load_data`: in-domain (training) and out-of-domain (test-only) medical centres,
# and the biological classes, in its order (the order fixes the class codes, and so which
# classes each centre favours in the two-centre schedule; tolkach_esca's is not sorted).
PATHOROB_APD_CENTRES = {
    "camelyon": (["RUMC", "UMCU"], ["CWZ", "RST", "LPON"]),
    "tcga": (
        ["Asterand", "Christiana Healthcare", "Roswell Park", "University of Pittsburgh"],
        [
            "Cureline",
            "Greater Poland Cancer Center",
            "International Genomics Consortium",
            "Johns Hopkins",
        ],
    ),
    "tolkach_esca": (["VALSET2_WNS", "VALSET4_CHA_FULL"], ["VALSET1_UKK", "VALSET3_TCGA"]),
}
PATHOROB_APD_CLASSES = {
    "camelyon": ["normal", "tumor"],
    "tcga": [
        "Breast_invasive_carcinoma",
        "Colon_adenocarcinoma",
        "Lung_adenocarcinoma",
        "Lung_squamous_cell_carcinoma",
    ],
    "tolkach_esca": ["TUMOR", "MUSC_PROP", "SH_OES", "SH_MAG", "REGR_TU", "ADVENT"],
}

# One split: [(centre, class, training rows)] sorted by (centre, class), and the largest number
# of training slides any cell takes at any split (fixes the validation slice and the test tail).
Split = tuple[list[tuple[int, int, int]], int]


def two_centre_split(n_classes: int, half: int, split: int, rows_per_slide: int) -> Split:
    """Split `split` of the two-centre design: PathoROB's camelyon and tolkach_esca schedules.

    Centre 0 trains on ``half - split`` slides of each class in the first half of the class
    codes (``j < n_classes // 2``) and ``half + split`` of the others; centre 1 the reverse.
    At split 0 every cell holds `half` slides (no centre-class association); at split
    `half` each class is seen at one centre only (Cramér's V = 1). PathoROB
    (`get_patches_map_to_split`, ``pathorob/apd/utils.py``): camelyon is ``n_classes=2,
    half=7``, tolkach_esca ``n_classes=6, half=3``; ``max_train_slides = 2 * half``.
    """
    if not 0 <= split <= half:
        raise ValueError(f"split {split} outside the schedule 0..{half}")
    first = n_classes // 2
    plan = []
    for i in (0, 1):
        for j in range(n_classes):
            favoured = (j < first) == (i == 1)
            plan.append((i, j, (half + split if favoured else half - split) * rows_per_slide))
    return sorted(plan), 2 * half


def tcga_split(split: int, rows_per_slide: int) -> Split:
    """Split `split` (0..6) of PathoROB's tcga 4 centres x 4 classes schedule.

    Cells on the diagonal (centre i, class i) take ``split + 2`` slides; the anti-diagonal
    (i + j = 3) 1 slide on odd splits, else 2 before split 3 and 0 after; the other cells 2
    slides before split 2, 1 before split 5, then 0. ``max_train_slides = 8``.
    Source: PathoROB `get_patches_map_to_split` (``pathorob/apd/utils.py``).
    """
    if not 0 <= split <= 6:
        raise ValueError(f"split {split} outside the tcga schedule 0..6")
    plan = []
    for i in range(4):
        for j in range(4):
            if i == j:
                slides = split + 2
            elif i + j == 3:
                slides = 1 if split % 2 == 1 else (2 if split < 3 else 0)
            else:
                slides = 2 if split < 2 else (1 if split < 5 else 0)
            plan.append((i, j, slides * rows_per_slide))
    return plan, 8


def pathorob_schedule(dataset: str, rows_per_slide: int) -> list[Split]:
    """PathoROB's full schedule for one of its datasets (``camelyon``, ``tcga``, ``tolkach_esca``)."""
    if dataset == "camelyon":
        return [two_centre_split(2, 7, s, rows_per_slide) for s in range(8)]
    if dataset == "tolkach_esca":
        return [two_centre_split(6, 3, s, rows_per_slide) for s in range(4)]
    if dataset == "tcga":
        return [tcga_split(s, rows_per_slide) for s in range(7)]
    raise ValueError(f"PathoROB has no APD schedule for {dataset!r}")


def training_table(split: Split, n_centres: int, n_classes: int) -> np.ndarray:
    """(centres, classes) training-row counts of one split."""
    table = np.zeros((n_centres, n_classes))
    for i, j, rows in split[0]:
        table[i, j] = rows
    return table


def cramers_v(table: np.ndarray) -> float:
    """Cramér's V of a contingency table: ``sqrt(chi2 / (n (min(r, c) - 1)))``, no continuity
    correction; rows and columns that are all zero are dropped first.

    nIPD (croma 1.0.1, `croma.nipd`) integrates over the Cramér's V of the centre-class
    association of each split's training set; croma takes those V values as input and does
    not ship their computation, so this is the textbook statistic of the training counts.
    On PathoROB's schedules it runs from exactly 0 (split 0) to exactly 1 (last split).
    """
    t = np.asarray(table, dtype=float)
    t = t[t.sum(axis=1) > 0][:, t.sum(axis=0) > 0]
    n = t.sum()
    if min(t.shape) < 2 or n == 0:
        return float("nan")
    expected = t.sum(axis=1, keepdims=True) * t.sum(axis=0, keepdims=True) / n
    chi2 = float(((t - expected) ** 2 / expected).sum())
    return float(np.sqrt(chi2 / (n * (min(t.shape) - 1))))

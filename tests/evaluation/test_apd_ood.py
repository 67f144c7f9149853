"""Out-of-domain APD and tolkach_esca's case-level splits against PathoROB's `compute` restated (pinned commit)."""

import numpy as np
import pytest
from pathorob_reference import ref_apd_compute_ood
from robustness_data import cohort

from evaluation.robustness_index.downstream import probe_robustness
from evaluation.robustness_index.probe_schedule import PATHOROB_APD_CENTRES, PATHOROB_APD_CLASSES

pytestmark = pytest.mark.filterwarnings(
    "ignore::sklearn.exceptions.ConvergenceWarning",
    "ignore:y_pred contains classes not in y_true:UserWarning",
    "ignore:A single label was found:UserWarning",
)


@pytest.fixture(autouse=True)
def one_blas_thread():
    """Hundreds of tiny lbfgs fits: BLAS threads only add contention (40x slower on a busy
    2-core machine, measured)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


def nested(x, biology, centre, slide, centres: list[str], classes: list[str]) -> list:
    """PathoROB's `features[centre][class]` lists of (patch, centre, class, slide), metadata order."""
    out = [[[] for _ in classes] for _ in centres]
    for row, b, c, s in zip(x, biology, centre, slide, strict=True):
        i, j = centres.index(c), classes.index(b)
        out[i][j].append((row, i, j, s))
    return out


def flat(x, biology, centre, slide, centres: list[str], classes: list[str]) -> list:
    """PathoROB's `data_test_ood`: (patch, centre, class, slide) tuples in metadata order."""
    return [
        (row, centres.index(c), classes.index(b), s)
        for row, b, c, s in zip(x, biology, centre, slide, strict=True)
    ]


@pytest.fixture(scope="module")
def camelyon_with_ood() -> dict:
    """Camelyon's shape (2 training centres x 2 classes x 17 slides) plus 3 test-only centres."""
    d = cohort(
        classes=2, centres=5, slides_per_cell=17, tiles_per_slide=2, dim=8, centre_strength=1.5
    )
    d["x"] = d["x"].astype(np.float64)
    d["ood"] = np.isin(d["centre"], ["centre2", "centre3", "centre4"])
    for s in range(3):  # OOD slides need not be whole or balanced: drop a few rows
        d["ood"][np.flatnonzero(d["centre"] == f"centre{s + 2}")[: s + 1]] = False
    return d


def test_ood_apd_parity_camelyon(camelyon_with_ood: dict) -> None:
    d = camelyon_with_ood
    i, o = ~np.isin(d["centre"], ["centre2", "centre3", "centre4"]), d["ood"]
    ours = probe_robustness(
        d["x"][i],
        d["biology"][i],
        d["centre"][i],
        d["slide"][i],
        iterations=1,
        ood_embeddings=d["x"][o],
        ood_biology=d["biology"][o],
    )
    classes = ["class0", "class1"]
    ref_id, ref_ood, ref_apd, ref_apd_ood = ref_apd_compute_ood(
        nested(
            d["x"][i],
            d["biology"][i],
            d["centre"][i],
            d["slide"][i],
            ["centre0", "centre1"],
            classes,
        ),
        flat(
            d["x"][o],
            d["biology"][o],
            d["centre"][o],
            d["slide"][o],
            ["centre2", "centre3", "centre4"],
            classes,
        ),
        "camelyon",
        8,
        2,
        1,
    )
    np.testing.assert_allclose(ours["accuracies"], ref_id, atol=1e-6)
    np.testing.assert_allclose(ours["ood_accuracies"], ref_ood, atol=1e-6)
    assert ours["apd"] == pytest.approx(ref_apd, abs=1e-6)
    assert ours["apd_ood"] == pytest.approx(ref_apd_ood, abs=1e-6)
    assert ours["n_ood"] == int(o.sum()) and ours["ood_note"] is None


def tolkach_like(cases: int = 9, tiles: int = 2, seed: int = 4) -> dict:
    """PathoROB's tolkach_esca shape: 2 centres x 6 classes, each case a slide in every class."""
    rng = np.random.default_rng(seed)
    classes = PATHOROB_APD_CLASSES["tolkach_esca"]
    id_centres, ood_centres = PATHOROB_APD_CENTRES["tolkach_esca"]
    class_dirs = rng.normal(size=(6, 8))
    rows, bio, cen, case = [], [], [], []
    for c, centre in enumerate(id_centres + ood_centres[:1]):
        shift = rng.normal(size=8) * 1.5
        for k in range(cases if c < 2 else 2):
            offset = rng.normal(size=8) * 0.5  # the case leaves its own signal in every class
            for j, b in enumerate(classes):
                rows.append(class_dirs[j] + shift + offset + rng.normal(size=(tiles, 8)))
                bio += [b] * tiles
                cen += [centre] * tiles
                case += [f"case_{c}{k:02d}"] * tiles
    d = {"x": np.vstack(rows), "biology": np.array(bio), "centre": np.array(cen)}
    d["slide"] = np.array(case)
    tests = [(0, 1), (2, 5), (7, 8)]  # three feasible splits per centre, 2 test cases each
    d["splits"] = {
        "train": {
            name: [[f"case_{c}{k:02d}" for k in range(cases) if k not in t] for t in tests]
            for c, name in enumerate(id_centres)
        },
        "test": {
            name: [[f"case_{c}{k:02d}" for k in t] for t in tests]
            for c, name in enumerate(id_centres)
        },
    }
    return d


def test_tolkach_case_splits_and_ood_parity() -> None:
    d = tolkach_like()
    id_centres, ood_centres = PATHOROB_APD_CENTRES["tolkach_esca"]
    classes = PATHOROB_APD_CLASSES["tolkach_esca"]
    i, o = np.isin(d["centre"], id_centres), d["centre"] == ood_centres[0]
    ours = probe_robustness(
        d["x"][i],
        d["biology"][i],
        d["centre"][i],
        d["slide"][i],
        iterations=1,
        ood_embeddings=d["x"][o],
        ood_biology=d["biology"][o],
        case_splits=d["splits"],
        class_order=classes,
        centre_order=id_centres,
    )
    ref_id, ref_ood, ref_apd, ref_apd_ood = ref_apd_compute_ood(
        nested(d["x"][i], d["biology"][i], d["centre"][i], d["slide"][i], id_centres, classes),
        flat(d["x"][o], d["biology"][o], d["centre"][o], d["slide"][o], ood_centres, classes),
        "tolkach_esca",
        4,
        2,
        1,
        medical_centers=id_centres,
        feasible_splits=d["splits"],
    )
    assert ours["design"] == "two_centre" and ours["min_slides_per_cell"] == 9
    assert ours["warnings"] == []  # cases span classes by design: no shared-slide warning
    np.testing.assert_allclose(ours["accuracies"], ref_id, atol=1e-6)
    np.testing.assert_allclose(ours["ood_accuracies"], ref_ood, atol=1e-6)
    assert ours["apd"] == pytest.approx(ref_apd, abs=1e-6)
    assert ours["apd_ood"] == pytest.approx(ref_apd_ood, abs=1e-6)
    # PathoROB's class order fixes the codes, and so which classes each centre favours.
    from evaluation.robustness_index.downstream import recode

    names = np.array(sorted(classes))
    assert recode(np.arange(6), names, classes, "class").tolist() == [5, 1, 4, 3, 2, 0]
    with pytest.raises(ValueError, match="does not list exactly"):
        recode(np.arange(6), names, classes[:5], "class")


def test_case_splits_hold_test_cases_out_of_training() -> None:
    import random

    from evaluation.robustness_index.probe_schedule import pathorob_schedule
    from evaluation.robustness_index.probe_sweep import (
        move_test_cases,
        shuffle_cells,
        split_rows,
    )

    d = tolkach_like(tiles=1)
    keep = d["centre"] != PATHOROB_APD_CENTRES["tolkach_esca"][1][0]
    slide = d["slide"][keep]
    centre = np.unique(d["centre"][keep], return_inverse=True)[1]
    biology = np.unique(d["biology"][keep], return_inverse=True)[1]
    cells: dict = {}
    for row, key in enumerate(zip(centre.tolist(), biology.tolist(), strict=True)):
        cells.setdefault(key, []).append(row)
    shuffle_cells(cells, 1, random.Random(0))
    tests = {0: ["case_000", "case_001"], 1: ["case_107", "case_108"]}
    move_test_cases(cells, 1, slide, tests)
    for split in pathorob_schedule("tolkach_esca", 1):
        train, val, test = split_rows(cells, split, 1)
        assert set(slide[test]) == {"case_000", "case_001", "case_107", "case_108"}
        assert not set(slide[train]) & set(slide[test]) and not set(slide[val]) & set(slide[test])


def test_ood_undefined_or_bad() -> None:
    d = cohort(classes=2, centres=3, slides_per_cell=6, tiles_per_slide=2, dim=8, seed=9)
    i = d["centre"] != "centre2"
    other = probe_robustness(
        d["x"][i],
        d["biology"][i],
        d["centre"][i],
        d["slide"][i],
        iterations=1,
        ood_embeddings=d["x"][~i],
        ood_biology=np.full(int((~i).sum()), "unseen"),
    )
    assert np.isfinite(other["apd"]) and np.isnan(other["apd_ood"])
    assert "not among the trained classes" in other["ood_note"]
    assert "ood_accuracies" not in other
    none = probe_robustness(d["x"][i], d["biology"][i], d["centre"][i], d["slide"][i], iterations=1)
    assert none["accuracies"] == other["accuracies"] and "no out-of-domain" in none["ood_note"]
    with pytest.raises(ValueError, match="NaN"):
        bad = d["x"][~i].copy()
        bad[0, 0] = np.nan
        probe_robustness(
            d["x"][i],
            d["biology"][i],
            d["centre"][i],
            d["slide"][i],
            iterations=1,
            ood_embeddings=bad,
            ood_biology=d["biology"][~i],
        )
    with pytest.raises(ValueError, match="no entry for centre"):
        probe_robustness(
            d["x"][i],
            d["biology"][i],
            d["centre"][i],
            d["slide"][i],
            iterations=1,
            case_splits={"train": {}, "test": {}},
        )


def test_pathorob_dataset_defaults() -> None:
    import argparse

    from evaluation.cli.robustness_index import apply_pathorob_dataset, parse_k

    def args(**kw) -> argparse.Namespace:
        base = dict(
            pathorob_dataset="tolkach_esca",
            k=None,
            apd_ood_group=None,
            drop_group=[],
            apd_rows_per_slide=None,
            apd_case_splits=None,
            apd_iterations=20,
        )
        return argparse.Namespace(**{**base, **kw})

    with pytest.raises(ValueError, match=r"tolkach_splits\.json"):
        apply_pathorob_dataset(args())
    a = args(apd_iterations=0)
    order = apply_pathorob_dataset(a)
    assert parse_k(a.k) == 46 and a.drop_group == ["OOD"] and a.apd_ood_group == "OOD"
    assert a.apd_rows_per_slide == 100 and order["class_order"][0] == "TUMOR"
    assert order["centre_order"] == ["VALSET2_WNS", "VALSET4_CHA_FULL"]
    a = args(pathorob_dataset="camelyon", k="5", apd_rows_per_slide=2)
    apply_pathorob_dataset(a)
    assert a.k == "5" and a.apd_rows_per_slide == 2  # given values win
    assert apply_pathorob_dataset(args(pathorob_dataset=None)) == {}

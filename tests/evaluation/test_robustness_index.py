"""Robustness Index: parity with PathoROB restated (pinned commit), invariants and bad input."""

import numpy as np
import pytest
import torch
from pathorob_reference import (
    ref_paired_robustness_index,
    ref_robustness_index,
    ref_robustness_index_k_opt,
)
from robustness_data import cohort

from evaluation.robustness_index import (
    PATHOROB_DEFAULT_K,
    paired_robustness_index,
    robustness_index,
    usable_neighbours,
)


@pytest.mark.parametrize("k", [1, 7, PATHOROB_DEFAULT_K["camelyon"], 40])
@pytest.mark.parametrize("centre_strength", [0.3, 2.0])
def test_parity_with_pathorob_fixed_k(k: int, centre_strength: float) -> None:
    d = cohort(centre_strength=centre_strength, seed=k)
    ours = robustness_index(
        d["x"], d["biology"], d["centre"], d["slide"], k=k, n_bootstrap=200, seed=3
    )
    ref, ref_acc = ref_robustness_index(d["x"], d["biology"], d["centre"], d["slide"], k, 200, 3)
    assert ours["ri"] == pytest.approx(ref["robustness_index"][k - 1], abs=1e-6)
    assert ours["ri_std"] == pytest.approx(ref["robustness_index-std"][k - 1], abs=1e-6)
    assert ours["ri_boot_mean"] == pytest.approx(ref["robustness_index-mean"][k - 1], abs=1e-6)
    assert ours["balanced_accuracy"] == pytest.approx(ref_acc, abs=1e-6)
    np.testing.assert_allclose(ours["ri_curve"], ref["robustness_index"][:k], atol=1e-6)
    assert ours["k"] == k and ours["k_source"] == "given" and ours["note"] is None


def test_parity_with_pathorob_k_by_balanced_accuracy() -> None:
    d = cohort(classes=2, centres=3, slides_per_cell=3, tiles_per_slide=10, centre_strength=1.5)
    ours = robustness_index(d["x"], d["biology"], d["centre"], d["slide"], k=None, n_bootstrap=0)
    k_opt, ri, accs = ref_robustness_index_k_opt(d["x"], d["biology"], d["centre"], d["slide"])
    assert ours["k_source"] == "balanced_accuracy"
    assert ours["k"] == k_opt
    assert ours["ri"] == pytest.approx(ri, abs=1e-6)
    for k, acc in accs.items():
        assert ours["balanced_accuracy_by_k"][k] == pytest.approx(acc, abs=1e-6)


def test_parity_with_pathorob_paired_2x2() -> None:
    parts = [
        cohort(classes=2, centres=2, slides_per_cell=3, tiles_per_slide=8, seed=s) for s in (1, 2)
    ]
    x = np.vstack([p["x"] for p in parts])
    # Distinct names per subset, as TCGA's projects and centres differ between pairs.
    bio = np.concatenate([np.char.add(p["biology"], f"-{i}") for i, p in enumerate(parts)])
    cen = np.concatenate([np.char.add(p["centre"], f"-{i}") for i, p in enumerate(parts)])
    sl = np.concatenate([np.char.add(p["slide"], f"-{i}") for i, p in enumerate(parts)])
    sub = np.repeat(["pairA", "pairB"], [len(p["x"]) for p in parts])
    k = 21
    ours = paired_robustness_index(x, bio, cen, sl, sub, k=k, n_bootstrap=100, seed=5)
    ref = ref_paired_robustness_index(x, bio, cen, sl, sub, k, 100, 5)
    assert ours["ri"] == pytest.approx(ref["robustness_index"][k - 1], abs=1e-6)
    assert ours["ri_std"] == pytest.approx(ref["robustness_index-std"][k - 1], abs=1e-6)
    assert ours["n_subsets"] == 2 and ours["warnings"] == []
    # Pooling is not averaging: the unpaired RI over all rows differs.
    unpaired = robustness_index(x, bio, cen, sl, k=k, n_bootstrap=0)
    assert unpaired["ri"] != pytest.approx(ours["ri"], abs=1e-6)


def test_ri_tracks_the_confounder() -> None:
    weak = cohort(centre_strength=0.1, seed=1)
    strong = cohort(centre_strength=4.0, seed=1)
    ri_weak = robustness_index(weak["x"], weak["biology"], weak["centre"], weak["slide"], k=11)
    ri_strong = robustness_index(
        strong["x"], strong["biology"], strong["centre"], strong["slide"], k=11
    )
    assert ri_weak["ri"] > 0.8 > 0.2 > ri_strong["ri"]


def test_same_slide_neighbours_are_dropped() -> None:
    d = cohort(seed=4)
    nb = usable_neighbours(d["x"], 30, np.unique(d["slide"], return_inverse=True)[1])
    assert not (d["slide"][nb.index] == d["slide"][:, None]).any()
    # Without slides only the query itself is excluded, so slide-mates appear.
    ours = robustness_index(d["x"], d["biology"], d["centre"], None, k=5, n_bootstrap=0)
    with_slides = robustness_index(
        d["x"], d["biology"], d["centre"], d["slide"], k=5, n_bootstrap=0
    )
    assert ours["counts"]["ss"] > with_slides["counts"]["ss"]


def test_float16_matches_float32() -> None:
    d = cohort(seed=6, dim=64)
    a = robustness_index(d["x"], d["biology"], d["centre"], d["slide"], k=11, n_bootstrap=0)
    b = robustness_index(
        d["x"], d["biology"], d["centre"], d["slide"], k=11, n_bootstrap=0, dtype=torch.float16
    )
    assert abs(a["ri"] - b["ri"]) < 0.01


def test_chunking_does_not_change_neighbours() -> None:
    d = cohort(seed=7)
    codes = np.unique(d["slide"], return_inverse=True)[1]
    whole = usable_neighbours(d["x"], 9, codes)
    chunked = usable_neighbours(d["x"], 9, codes, block_elements=3 * len(d["x"]))
    np.testing.assert_array_equal(whole.index, chunked.index)


@pytest.mark.parametrize(
    ("field", "reason"), [("biology", "one biological class"), ("centre", "one centre")]
)
def test_single_class_or_centre_is_nan_with_a_reason(field: str, reason: str) -> None:
    d = cohort(seed=8)
    d[field] = np.full(len(d["x"]), "same")
    out = robustness_index(d["x"], d["biology"], d["centre"], d["slide"], k=5)
    assert np.isnan(out["ri"]) and np.isnan(out["ri_std"]) and reason in out["note"]


def test_centre_with_one_class_is_warned() -> None:
    d = cohort(classes=2, centres=3, seed=9)
    d["centre"] = d["centre"].astype(object)
    d["centre"][d["biology"] == "class0"] = "centre_only0"
    out = robustness_index(d["x"], d["biology"], d["centre"], d["slide"], k=5, n_bootstrap=0)
    assert np.isfinite(out["ri"])
    assert any("centre_only0" in w for w in out["warnings"])


def test_bad_input_is_named() -> None:
    d = cohort(seed=10)
    x = d["x"].copy()
    x[3, 0] = np.nan
    with pytest.raises(ValueError, match=r"NaN/inf in 1 row.*row 3"):
        robustness_index(x, d["biology"], d["centre"], d["slide"], k=5)
    with pytest.raises(ValueError, match=r"k=10000 must be in \[1, \d+\]"):
        robustness_index(d["x"], d["biology"], d["centre"], d["slide"], k=10000)
    with pytest.raises(ValueError, match="centre has 3 values"):
        robustness_index(d["x"], d["biology"], d["centre"][:3], d["slide"], k=5)
    missing = d["biology"].astype(object)
    missing[7] = None
    with pytest.raises(ValueError, match=r"biology is missing for 1 sample.*row 7"):
        robustness_index(d["x"], missing, d["centre"], d["slide"], k=5)

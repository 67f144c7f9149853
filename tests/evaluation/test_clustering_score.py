"""Clustering score: parity with PathoROB's `compute` restated (pinned commit), invariants and bad input."""

import numpy as np
import pytest
from pathorob_reference import ref_clustering_compute
from robustness_data import cohort

from evaluation.robustness_index.clustering import clustering_score


@pytest.mark.parametrize("order_seed", [None, 4])
def test_parity_with_pathorob(order_seed: int | None) -> None:
    d = cohort(
        classes=3,
        centres=2,
        slides_per_cell=2,
        tiles_per_slide=6,
        dim=8,
        centre_strength=1.0,
        seed=1,
    )
    x, bio, cen = d["x"], d["biology"], d["centre"]
    if order_seed is not None:  # classes and centres first appear out of sorted order
        p = np.random.default_rng(order_seed).permutation(len(x))
        x, bio, cen = x[p], bio[p], cen[p]
    ours = clustering_score(x, bio, cen, n_trials=4)
    ref = ref_clustering_compute(x, bio, cen, num_trials=4)
    assert ours["k"] == ref["K"] and ours["k_source"] == "silhouette"
    assert ours["clustering_score"] == pytest.approx(ref["clustering_score_mean"], abs=1e-6)
    assert ours["clustering_score_std"] == pytest.approx(ref["clustering_score_std"], abs=1e-6)
    assert ours["n_combinations"] == ref["num_combinations"] == 3 and ours["n_evaluated"] == 3


def test_parity_with_a_missing_cell_and_given_k() -> None:
    d = cohort(classes=3, centres=2, slides_per_cell=2, tiles_per_slide=5, dim=8, seed=2)
    keep = ~((d["biology"] == "class2") & (d["centre"] == "centre1"))
    x, bio, cen = d["x"][keep], d["biology"][keep], d["centre"][keep]
    ours = clustering_score(x, bio, cen, k=3, n_trials=3)
    ref = ref_clustering_compute(x, bio, cen, K=3, num_trials=3)
    assert ours["clustering_score"] == pytest.approx(ref["clustering_score_mean"], abs=1e-6)
    assert ours["n_evaluated"] == 1 and ours["n_combinations"] == 3


def test_score_tracks_the_confounder() -> None:
    weak = cohort(classes=2, centres=2, tiles_per_slide=10, dim=8, centre_strength=0.0, seed=3)
    strong = cohort(classes=2, centres=2, tiles_per_slide=10, dim=8, centre_strength=6.0, seed=3)
    a = clustering_score(weak["x"], weak["biology"], weak["centre"], k=2, n_trials=3)
    b = clustering_score(strong["x"], strong["biology"], strong["centre"], k=2, n_trials=3)
    assert a["clustering_score"] > 0.5 > -0.5 > b["clustering_score"]


def test_bad_input_is_nan_with_a_reason() -> None:
    d = cohort(classes=2, centres=2, tiles_per_slide=4, dim=8)
    n = len(d["x"])
    one = clustering_score(d["x"], np.full(n, "a"), d["centre"])
    assert np.isnan(one["clustering_score"]) and "one biological class" in one["note"]
    one = clustering_score(d["x"], d["biology"], np.full(n, "c"))
    assert np.isnan(one["clustering_score"]) and "one centre" in one["note"]
    # Each class at its own centre: no 2x2 combination has all four cells.
    split = clustering_score(d["x"], d["biology"], np.char.replace(d["biology"], "class", "centre"))
    assert np.isnan(split["clustering_score"]) and "all four cells" in split["note"]
    with pytest.raises(ValueError, match="k=1"):
        clustering_score(d["x"], d["biology"], d["centre"], k=1)

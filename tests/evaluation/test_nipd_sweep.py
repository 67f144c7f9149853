"""nIPD from the probe sweep: parity with croma 1.0.1 (when importable) and with a restatement that always runs."""

import numpy as np
import pytest
from pathorob_reference import ref_apd_compute
from robustness_data import cohort
from scipy.stats.contingency import association

from evaluation.robustness_index.downstream import probe_robustness
from evaluation.robustness_index.probe_schedule import pathorob_schedule, training_table
from evaluation.robustness_index.probe_sweep import probe_sweep


@pytest.fixture(scope="module")
def data() -> dict:
    d = cohort(
        classes=2,
        centres=2,
        slides_per_cell=17,
        tiles_per_slide=2,
        dim=8,
        centre_strength=2.0,
        seed=11,
    )
    d["x"] = d["x"].astype(np.float64)  # croma casts to float64
    d["ours"] = probe_robustness(
        d["x"], d["biology"], d["centre"], d["slide"], iterations=2, seed=1000
    )
    return d


def test_nipd_restated(data: dict) -> None:
    """g(V) = (mean a(V) - mean a(0)) / (mean a(0) - 1/K), trapezoid over V in [0, 1]."""
    features = [[[] for _ in range(2)] for _ in range(2)]
    for x, b, c, s in zip(data["x"], data["biology"], data["centre"], data["slide"], strict=True):
        i, j = int(c[-1]), int(b[-1])
        features[i][j].append((x, i, j, s))
    acc, _ = ref_apd_compute(features, "camelyon", 8, 2, 2)
    mean = np.asarray(acc).mean(axis=1)
    v = np.array(
        [0.0]
        + [
            association(training_table(s, 2, 2).astype(int), method="cramer")
            for s in pathorob_schedule("camelyon", 2)[1:]
        ]
    )
    g = (mean - mean[0]) / (mean[0] - 0.5)
    expected = float(np.sum((v[1:] - v[:-1]) * (g[1:] + g[:-1]) / 2))
    assert data["ours"]["nipd"] == pytest.approx(expected, abs=1e-6)
    np.testing.assert_allclose(data["ours"]["cramers_v"], v, atol=1e-12)
    assert data["ours"]["chance"] == 0.5


def test_sweep_and_nipd_match_croma(data: dict) -> None:
    croma = pytest.importorskip("croma")
    from croma.downstream import pathorob_schedule as croma_schedule
    from croma.downstream import probe_sweep as croma_sweep

    centre = np.unique(data["centre"], return_inverse=True)[1]
    biology = np.unique(data["biology"], return_inverse=True)[1]
    theirs = croma_sweep(
        data["x"],
        centre,
        biology,
        schedule=croma_schedule("camelyon", rows_per_slide=2),
        rows_per_slide=2,
        iterations=2,
        seed=1000,
    )
    ours = probe_sweep(data["x"], centre, biology, pathorob_schedule("camelyon", 2), 2, 2, 1000)
    np.testing.assert_allclose(ours, theirs, atol=1e-6)
    np.testing.assert_allclose(data["ours"]["accuracies"], theirs, atol=1e-6)
    v = data["ours"]["cramers_v"]
    assert data["ours"]["nipd"] == pytest.approx(croma.nipd(theirs, v, 0.5), abs=1e-6)
    assert data["ours"]["apd"] == pytest.approx(croma.apd(theirs), abs=1e-6)

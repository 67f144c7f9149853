"""`scripts/bench_centres.py` end to end on generated two-centre folders: manifest, embeddings,
the robustness-index command, and its numbers against independent restatements."""

import csv
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from croma_reference import ref_croma
from pathorob_reference import ref_apd_compute_ood, ref_robustness_index
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
SPEC = importlib.util.spec_from_file_location(
    "bench_centres", ROOT / "scripts" / "bench_centres.py"
)
bench_centres = importlib.util.module_from_spec(SPEC)
sys.modules["bench_centres"] = bench_centres  # its dataclass looks its module up
SPEC.loader.exec_module(bench_centres)

pytestmark = pytest.mark.filterwarnings(
    "ignore::sklearn.exceptions.ConvergenceWarning",
    "ignore:y_pred contains classes not in y_true:UserWarning",
    "ignore:A single label was found:UserWarning",
)


@pytest.fixture(autouse=True)
def one_blas_thread():
    """Many tiny lbfgs fits: BLAS threads only add contention on a busy machine."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


def labelled_folder(root: Path, tint: tuple, per_class: int, seed: int) -> Path:
    """<root>/<class>/<i>.png: two tissue-like colours, a centre tint, per-tile noise."""
    rng = np.random.default_rng(seed)
    base = {"pinkish": (200, 120, 160), "purplish": (120, 80, 170)}
    for cls, colour in base.items():
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            tile = np.array(colour) + np.array(tint) + rng.normal(0, 25, (32, 32, 3))
            tile += rng.normal(0, 15, 3)  # the tile's own shade, shared by its sub-tiles
            Image.fromarray(np.clip(tile, 0, 255).astype(np.uint8)).save(root / cls / f"{i}.png")
    return root


def test_two_centres_through_the_cli(tmp_path: Path) -> None:
    # PathoROB's camelyon shape (2 centres x 2 classes x 17 slides), so its schedule applies.
    a = labelled_folder(tmp_path / "alpha", (0, 0, 0), 17, seed=1)
    b = labelled_folder(tmp_path / "beta", (30, -20, 10), 17, seed=2)
    c = labelled_folder(tmp_path / "gamma", (-25, 10, 20), 3, seed=3)
    work, out = tmp_path / "work", tmp_path / "centres.md"
    bench_centres.main(
        [
            "--centres",
            f"alpha={a}",
            f"beta={b}",
            "--ood",
            f"gamma={c}",
            "--class-map",
            "shared:pinkish=pink,purplish=purple",
            "--encoders",
            "colour histogram",
            "--k",
            "7",
            "--n-bootstrap",
            "10",
            "--apd-iterations",
            "1",
            "--clustering-trials",
            "2",
            "--work",
            str(work),
            "--out",
            str(out),
        ]
    )
    folder = work / "shared"
    with (folder / "manifest.csv").open() as f:
        rows = list(csv.DictReader(f))
    x_all = np.load(folder / "colour_histogram.npy")
    assert len(rows) == len(x_all) == (17 * 4 + 3 * 2) * 4  # 2x2 sub-tiles per tile
    assert {r["subset"] for r in rows} == {"ID", "OOD"}
    results = json.loads((folder / "robustness_index" / "results.json").read_text())
    r = results["encoders"]["colour_histogram"]
    assert results["dropped_rows"] == 3 * 2 * 4 and results["apd_ood_rows"] == 3 * 2 * 4

    ids = np.array([row["subset"] == "ID" for row in rows])
    bio = np.array([row["label"] for row in rows])
    centre = np.array([row["centre"] for row in rows])
    slide = np.array([row["slide_id"] for row in rows])
    x = x_all[ids]
    # RI at k = 7, PathoROB's functions restated.
    stats, _ = ref_robustness_index(x, bio[ids], centre[ids], slide[ids], opt_k=7)
    assert r["ri"]["ri"] == pytest.approx(stats["robustness_index"][6], abs=1e-6)
    # CRoMa: croma's functions restated, the source tile as the group.
    croma = ref_croma(x, bio[ids], centre[ids], slide[ids])
    assert r["croma"]["croma"] == pytest.approx(croma["croma"], abs=1e-6)
    assert r["croma"]["f0"] == pytest.approx(croma["f0"], abs=1e-6)
    # APD in- and out-of-domain: PathoROB's `compute` restated on the same rows.
    classes, centres = ["pink", "purple"], ["alpha", "beta"]
    features = [[[] for _ in classes] for _ in centres]
    for row, b_, c_, s_ in zip(x, bio[ids], centre[ids], slide[ids], strict=True):
        i, j = centres.index(c_), classes.index(b_)
        features[i][j].append((row, i, j, s_))
    ood = [
        (row, 0, classes.index(b_), s_)
        for row, b_, s_ in zip(x_all[~ids], bio[~ids], slide[~ids], strict=True)
    ]
    ref_id, ref_ood, ref_apd, ref_apd_ood = ref_apd_compute_ood(features, ood, "camelyon", 8, 4, 1)
    np.testing.assert_allclose(r["probe"]["accuracies"], ref_id, atol=1e-6)
    np.testing.assert_allclose(r["probe"]["ood_accuracies"], ref_ood, atol=1e-6)
    assert r["probe"]["apd"] == pytest.approx(ref_apd, abs=1e-6)
    assert r["probe"]["apd_ood"] == pytest.approx(ref_apd_ood, abs=1e-6)
    assert np.isfinite(r["clustering"]["clustering_score"])
    # The table has every cell, no NaN here.
    table = out.read_text()
    line = next(t for t in table.splitlines() if t.startswith("| colour histogram"))
    assert "NaN" not in line and f"{r['probe']['apd_ood']:.4f}" in line


def test_help_and_bad_folder(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        bench_centres.main(["--help"])
    assert exit_.value.code == 0 and "--centres" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="NAME=DIR"):
        bench_centres.main(
            ["--centres", f"a={tmp_path / 'missing'}", "--encoders", "colour histogram"]
        )

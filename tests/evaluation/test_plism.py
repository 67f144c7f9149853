"""PLISM pair metrics against a brute-force loop, known answers, grouping and file layouts."""

import itertools

import h5py
import numpy as np
import pytest
import torch

from evaluation.plism import (
    evaluate_slides,
    find_slide_files,
    leaderboard_score,
    load_slide_set,
    pair_metrics,
    slide_pairs,
    summarise,
    write_plismbench_layout,
)


def brute_force(a: np.ndarray, b: np.ndarray, ks: tuple[int, ...]) -> dict[str, float]:
    """plismbench's definition (owkin/plism-benchmark@172bd8d, ``core_compute_metrics``) as plain loops."""
    n = len(a)
    z = np.concatenate([a, b]).astype(np.float64)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    out = {"cosine_similarity": float(np.mean([z[i] @ z[n + i] for i in range(n)]))}
    for k in ks:
        hits = 0
        for i in range(2 * n):
            sims = sorted(((float(z[i] @ z[j]), j) for j in range(2 * n) if j != i), reverse=True)
            nearest = [j for _, j in sims[:k]]
            hits += ((i + n) % (2 * n)) in nearest
        out[f"top_{k}_accuracy"] = hits / (2 * n)
    return out


@pytest.mark.parametrize("chunk_size", [1000, 7, 16])
def test_pair_metrics_equals_brute_force(chunk_size: int) -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(37, 12))
    b = a + rng.normal(scale=1.2, size=a.shape)
    ks = (1, 3, 5, 10)
    expected = brute_force(a, b, ks)
    got = pair_metrics(a, b, ks, chunk_size=chunk_size)
    assert got.keys() == expected.keys()
    for key in expected:
        assert got[key] == pytest.approx(expected[key], abs=1e-6), key


def test_pair_metrics_float16_close_to_float32() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=(200, 64)).astype(np.float32)
    b = a + rng.normal(scale=0.8, size=a.shape).astype(np.float32)
    f32 = pair_metrics(a, b, chunk_size=64)
    f16 = pair_metrics(torch.from_numpy(a), torch.from_numpy(b), dtype=torch.float16, chunk_size=64)
    assert f16["cosine_similarity"] == pytest.approx(f32["cosine_similarity"], abs=2e-3)
    for k in (1, 3, 5, 10):
        assert f16[f"top_{k}_accuracy"] == pytest.approx(f32[f"top_{k}_accuracy"], abs=0.03)


def test_identical_features() -> None:
    a = np.random.default_rng(2).normal(size=(300, 16))
    got = pair_metrics(a, a.copy(), chunk_size=128)
    assert got["cosine_similarity"] == pytest.approx(1.0)
    assert got["top_1_accuracy"] == 1.0


def test_independent_features_chance_level() -> None:
    rng = np.random.default_rng(3)
    n = 2000
    a, b = rng.normal(size=(n, 64)), rng.normal(size=(n, 64))
    got = pair_metrics(a, b, top_k=(1, 10, 50), chunk_size=512)
    assert abs(got["cosine_similarity"]) < 0.01
    for k in (1, 10, 50):
        chance = k / (2 * n - 1)
        assert got[f"top_{k}_accuracy"] == pytest.approx(
            chance, abs=4 * np.sqrt(chance / (2 * n)) + 1e-3
        )


def test_pair_metrics_rejects_misaligned() -> None:
    with pytest.raises(ValueError, match="same"):
        pair_metrics(np.zeros((4, 3)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="top_k"):
        pair_metrics(np.ones((4, 3)), np.ones((4, 3)), top_k=(10,))


def test_pair_counts_13_by_7() -> None:
    conditions = {f"S{i}_C{j}": (f"S{i}", f"C{j}") for i in range(13) for j in range(7)}
    groups = [g for _, _, g in slide_pairs(conditions)]
    assert len(groups) == 4095
    assert groups.count("cross_scanner") == 273
    assert groups.count("cross_staining") == 546
    assert groups.count("cross_both") == 3276


def test_leaderboard_mean_of_four_medians() -> None:
    rows = []
    values = {
        "cross_scanner": [0.9, 0.7, 0.8],
        "cross_staining": [0.2, 0.4, 0.1],
        "cross_both": [0.05, 0.15, 0.1],
    }
    cos = iter(np.linspace(0.3, 0.95, 9))
    for group, tops in values.items():
        for t in tops:
            rows.append({"group": group, "cosine_similarity": next(cos), "top_10_accuracy": t})
    summary = summarise(rows, ["cosine_similarity", "top_10_accuracy"])
    cos_median = float(np.median(np.linspace(0.3, 0.95, 9)))
    expected = (cos_median + 0.8 + 0.2 + 0.1) / 4
    assert leaderboard_score(summary) == pytest.approx(expected)
    assert summary["cross_scanner"]["top_10_accuracy"]["iqr"] == pytest.approx(0.1)
    assert summary["all"]["top_10_accuracy"]["n"] == 9


def test_evaluate_slides_groups_and_score() -> None:
    rng = np.random.default_rng(4)
    base = rng.normal(size=(60, 16))
    feats, conds = {}, {}
    for s, c in itertools.product(range(3), range(2)):
        feats[f"S{s}_C{c}"] = base + 0.3 * s + 0.2 * rng.normal(size=base.shape) * (c + 1)
        conds[f"S{s}_C{c}"] = (f"S{s}", f"C{c}")
    result = evaluate_slides(feats, conds, progress=False)
    assert len(result.rows) == 15
    assert result.summary["cross_scanner"]["cosine_similarity"]["n"] == 3
    assert result.summary["cross_staining"]["cosine_similarity"]["n"] == 6
    assert result.summary["cross_both"]["cosine_similarity"]["n"] == 6
    assert result.leaderboard == pytest.approx(leaderboard_score(result.summary))
    row = result.rows[0]
    assert row["top_3_accuracy"] == pytest.approx(
        pair_metrics(feats[row["slide_a"]], feats[row["slide_b"]])["top_3_accuracy"]
    )


def _write_h5(path, feats: np.ndarray, coords: np.ndarray) -> None:
    with h5py.File(path, "w") as f:
        f["features"] = feats
        f["coords"] = coords


def test_h5_and_plismbench_layouts_roundtrip(tmp_path) -> None:
    rng = np.random.default_rng(5)
    coords = np.array([[224 * i, 224 * j] for i in range(4) for j in range(3)], dtype=np.int64)
    perm = rng.permutation(len(coords))
    h5_dir = tmp_path / "h5"
    h5_dir.mkdir()
    originals = {}
    for name in ("GMH_S60_to_GMH_S60.tif", "KR_AT2_to_GMH_S60.tif"):
        f = rng.normal(size=(len(coords), 8)).astype(np.float32)
        originals[name] = f
        # Shuffled rows: readers must align tiles by coordinates.
        _write_h5(h5_dir / f"{name}.h5", f[perm], coords[perm])
    files = find_slide_files([h5_dir])
    feats, conds, xy = load_slide_set(files)
    assert conds["KR_AT2_to_GMH_S60.tif"] == ("KR", "AT2")
    np.testing.assert_array_equal(xy, coords)
    np.testing.assert_allclose(feats["GMH_S60_to_GMH_S60.tif"], originals["GMH_S60_to_GMH_S60.tif"])
    written = write_plismbench_layout(sorted(h5_dir.glob("*.h5")), tmp_path / "pb", "vitkd_student")
    arr = np.load(written[0])
    assert arr.shape == (12, 11)
    np.testing.assert_array_equal(arr[:, 0], 0)
    np.testing.assert_array_equal(arr[:, 1:3], coords)
    feats2, conds2, _ = load_slide_set(find_slide_files([tmp_path / "pb" / "vitkd_student"]))
    assert conds2 == conds
    for k in feats:
        np.testing.assert_allclose(feats2[k], feats[k])


def test_misregistered_slides_error(tmp_path) -> None:
    coords = np.array([[0, 0], [0, 224]], dtype=np.int64)
    _write_h5(tmp_path / "A_X.h5", np.ones((2, 3)), coords)
    _write_h5(tmp_path / "B_X.h5", np.ones((2, 3)), coords + 1)
    with pytest.raises(ValueError, match="same tile coordinates"):
        load_slide_set(find_slide_files([tmp_path]))

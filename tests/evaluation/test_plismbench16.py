"""plismbench's float16 PLISM arithmetic: bit-for-bit against a restatement of its numpy code."""

import json

import h5py
import numpy as np
import pytest
import torch

from evaluation.plism import evaluate_slides, leaderboard_score, pair_metrics, summarise
from evaluation.plism.plismbench16 import float16_matmul, plismbench_pair_metrics

PLISMBENCH = (
    "https://github.com/owkin/plism-benchmark/blob/172bd8d3bb3d7ad995f05655268fd42e138f2f2e/"
    "plismbench/engine/evaluate.py"
)


def plismbench_oracle(a: np.ndarray, b: np.ndarray, ks: list[int]) -> dict[str, float]:
    """The numpy (device="cpu") path of ``compute_metrics_ab`` + ``core_compute_metrics`` at PLISMBENCH.

    Restated operation by operation, on the whole (2n, 2n) matrix as plismbench does: float32 load,
    float16 cast, float16 matmul / norm / divide, mean of the diagonal of the A-B block, and
    ``argpartition(-cos, range(1, kmax + 1))`` with column 0 dropped as "self".
    """
    n = a.shape[0]
    m = np.concatenate([a.astype(np.float32), b.astype(np.float32)], axis=0).astype(np.float16)
    dot = np.matmul(m, m.T)
    norm = np.linalg.norm(m, axis=1, keepdims=True)
    cos = dot / (norm * norm.T)
    out = {"cosine_similarity": float(np.diag(cos[:n, n:]).mean())}
    top = np.argpartition(-cos, range(1, max(ks) + 1), axis=1)[:, 1 : max(ks) + 1]
    for k in ks:
        accs = []
        for i, idx in enumerate([top[:n, :k], top[n:, :k]]):
            other = np.arange(n, 2 * n) if i == 0 else np.arange(0, n)
            accs.append(float(np.sum(np.any(idx == other[:, None], axis=1)) / n))
        out[f"top_{k}_accuracy"] = sum(accs) / 2
    return out


def tied_features(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Slides with float16 ties: duplicated tiles, near-copies, exact copies across slides."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, d)).astype(np.float32) * 3
    q = n // 4
    a[q : 2 * q] = a[:q]  # duplicated tiles inside slide A
    b = a + rng.normal(scale=0.02, size=a.shape).astype(np.float32)  # partners cos ~ 0.9999
    b[: n // 8] = a[: n // 8]  # exact copies: partner ties with self
    return a, b


@pytest.mark.parametrize(("n", "d", "chunk"), [(48, 24, 1000), (48, 24, 7), (130, 40, 64)])
def test_equals_plismbench_bit_for_bit(n: int, d: int, chunk: int) -> None:
    a, b = tied_features(n, d, seed=n + d)
    ks = [1, 3, 5, 10]
    expected = plismbench_oracle(a, b, ks)
    got = plismbench_pair_metrics(a, b, ks, chunk_size=chunk)
    assert got == expected  # exact equality of every float


def test_random_features_bit_for_bit() -> None:
    rng = np.random.default_rng(5)
    a = rng.normal(size=(200, 96)).astype(np.float32)
    b = a + rng.normal(scale=0.9, size=a.shape).astype(np.float32)
    ks = [1, 10]
    assert plismbench_pair_metrics(torch.from_numpy(a), b, ks, chunk_size=50) == (
        plismbench_oracle(a, b, ks)
    )


def test_torch_float16_mode_is_not_plismbench() -> None:
    """The fast float16 mode masks self; plismbench drops column 0 and loses tied partners."""
    a, b = tied_features(48, 24, seed=72)
    ks = [1, 3]
    torch16 = pair_metrics(a, b, ks, dtype=torch.float16)
    assert torch16["top_1_accuracy"] > plismbench_oracle(a, b, ks)["top_1_accuracy"]


def test_float16_matmul_is_numpys() -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(size=(200, 768)).astype(np.float16)
    y = rng.normal(size=(150, 768)).astype(np.float16)
    got = float16_matmul(torch.from_numpy(x), torch.from_numpy(y)).numpy()
    np.testing.assert_array_equal(got.view(np.uint16), (x @ y.T).view(np.uint16))
    # the correctly rounded product is a different thing: the emulation must not be that
    exact = (x.astype(np.float64) @ y.astype(np.float64).T).astype(np.float16)
    assert (exact != got).any()


def test_rounded_leaderboard() -> None:
    """plismbench's results table rounds each median to 3 decimals (pandas ``.round(3)``)."""
    rows = [
        {"group": g, "cosine_similarity": c, "top_10_accuracy": t}
        for g, c, t in [
            ("cross_scanner", 0.80049, 0.86351),
            ("cross_staining", 0.70051, 0.31849),
            ("cross_both", 0.6, 0.18251),
        ]
    ]
    summary = summarise(rows, ["cosine_similarity", "top_10_accuracy"])
    medians = [0.7, 0.864, 0.318, 0.183]
    assert leaderboard_score(summary, decimals=3) == round(float(np.mean(medians)), 3)
    assert leaderboard_score(summary) != leaderboard_score(summary, decimals=3)


def test_evaluate_slides_plismbench_arithmetic() -> None:
    rng = np.random.default_rng(7)
    base = rng.normal(size=(30, 16)).astype(np.float32)
    feats, conds = {}, {}
    for s in range(3):
        for c in range(2):
            feats[f"S{s}_C{c}"] = base + 0.4 * rng.normal(size=base.shape).astype(np.float32)
            conds[f"S{s}_C{c}"] = (f"S{s}", f"C{c}")
    result = evaluate_slides(feats, conds, progress=False, arithmetic="plismbench")
    row = result.rows[4]
    expected = plismbench_oracle(feats[row["slide_a"]], feats[row["slide_b"]], [1, 3, 5, 10])
    assert {k: row[k] for k in expected} == expected
    assert result.leaderboard_3dp == round(result.leaderboard_3dp, 3)
    rounded = summarise(result.rows, result.metric_names, decimals=3)
    assert rounded["all"]["cosine_similarity"]["median"] == pytest.approx(
        result.summary["all"]["cosine_similarity"]["median"], abs=5e-4
    )
    with pytest.raises(ValueError, match="arithmetic"):
        evaluate_slides(feats, conds, progress=False, arithmetic="numpy")


def test_cli_dtype_plismbench(tmp_path, capsys) -> None:
    from evaluation.cli import main

    rng = np.random.default_rng(8)
    coords = np.array([[224 * i, 0] for i in range(12)], dtype=np.int64)
    base = rng.normal(size=(12, 8))
    names = [f"{st}_{sc}" for st in ("GIV", "GM") for sc in ("AT2", "P")]
    for i, name in enumerate(names):
        with h5py.File(tmp_path / f"{name}.h5", "w") as f:
            f["features"] = (base + 0.3 * i + rng.normal(size=base.shape)).astype(np.float32)
            f["coords"] = coords
    main(["plism", str(tmp_path), "--out", str(tmp_path / "out"), "--dtype", "plismbench"])
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["leaderboard_3dp"] == pytest.approx(results["leaderboard"], abs=1e-3)
    assert "plismbench rounding" in capsys.readouterr().out

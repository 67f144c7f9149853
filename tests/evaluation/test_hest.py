"""HEST ridge/PCA probe recovers a planted linear target; split files and the bench layout are read."""

import csv
import json

import h5py
import numpy as np
import pytest

from evaluation.hest import hest_fold, load_bench_task, load_table, read_folds, run_hest


def _planted(seed: int = 0, noise: float = 0.1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(300, 40))
    w = rng.normal(size=(40, 5))
    y = x @ w + noise * rng.normal(size=(300, 5))
    return x, y


def test_planted_linear_target_recovered() -> None:
    x, y = _planted()
    out = hest_fold(x[:200], y[:200], x[200:], y[200:], n_components=256)
    assert out["n_components"] == 40
    assert out["alpha"] == pytest.approx(100 / (40 * 5))
    assert out["pearson_mean"] > 0.99
    noise = np.random.default_rng(1).normal(size=y.shape)
    assert abs(hest_fold(x[:200], noise[:200], x[200:], noise[200:])["pearson_mean"]) < 0.15


def test_hest_fold_matches_manual_pipeline() -> None:
    x, y = _planted(noise=3.0)
    mean, std = x[:150].mean(0), x[:150].std(0)
    xs_tr, xs_te = (x[:150] - mean) / std, (x[150:] - mean) / std
    _, _, vt = np.linalg.svd(xs_tr - xs_tr.mean(0), full_matrices=False)
    comp = vt[:10]
    z_tr, z_te = (xs_tr - xs_tr.mean(0)) @ comp.T, (xs_te - xs_tr.mean(0)) @ comp.T
    alpha = 100 / (10 * 5)
    w = np.linalg.solve(z_tr.T @ z_tr + alpha * np.eye(10), z_tr.T @ y[:150])
    pred = z_te @ w
    expected = np.mean([np.corrcoef(pred[:, t], y[150:, t])[0, 1] for t in range(5)])
    got = hest_fold(x[:150], y[:150], x[150:], y[150:], n_components=10)["pearson_mean"]
    assert got == pytest.approx(expected, abs=1e-4)


def _write_csv(path, header, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def test_table_mode_with_patient_folds(tmp_path) -> None:
    x, y = _planted()
    np.save(tmp_path / "emb.npy", x.astype(np.float32))
    patients = [f"P{i % 3}" for i in range(300)]
    _write_csv(
        tmp_path / "targets.csv",
        ["sample_id", "g0", "g1", "g2", "g3", "g4"],
        [[p, *row] for p, row in zip(patients, y, strict=True)],
    )
    for k in range(3):
        _write_csv(
            tmp_path / "splits" / f"train_{k}.csv",
            ["sample_id"],
            [[f"P{j}"] for j in range(3) if j != k],
        )
        _write_csv(tmp_path / "splits" / f"test_{k}.csv", ["sample_id"], [[f"P{k}"]])
    table = load_table(tmp_path / "emb.npy", tmp_path / "targets.csv")
    folds = read_folds(tmp_path / "splits")
    out = run_hest(table, folds, progress=False)
    assert len(out["folds"]) == 3 and out["pearson_mean"] > 0.99
    assert set(out["pearson_per_target"]) == {"g0", "g1", "g2", "g3", "g4"}


def test_bench_layout_with_csv_expression(tmp_path) -> None:
    rng = np.random.default_rng(2)
    task, emb = tmp_path / "IDC", tmp_path / "emb"
    emb.mkdir()
    genes = ["ERBB2", "KRT8"]
    (task / "splits").mkdir(parents=True)
    (task / "var_50genes.json").write_text(json.dumps({"genes": genes}))
    w = rng.normal(size=(16, 2))
    for s in ("TENX95", "TENX99"):
        x = rng.normal(size=(50, 16)).astype(np.float32)
        counts = np.expm1(x @ w + 6.0)
        barcodes = [f"{s}-{i}" for i in range(50)]
        with h5py.File(emb / f"{s}.h5", "w") as f:
            f["embeddings"] = x
            f["barcodes"] = np.array(barcodes, dtype="S")[:, None]
        _write_csv(
            task / "adata" / f"{s}.csv",
            ["barcode", *genes, "OTHER"],
            [[b, *c, 0] for b, c in zip(barcodes, counts, strict=True)],
        )
    _write_csv(
        task / "splits" / "train_0.csv",
        ["sample_id", "patches_path", "expr_path"],
        [["TENX95", "patches/TENX95.h5", "adata/TENX95.h5ad"]],
    )
    _write_csv(
        task / "splits" / "test_0.csv",
        ["sample_id", "patches_path", "expr_path"],
        [["TENX99", "patches/TENX99.h5", "adata/TENX99.h5ad"]],
    )
    table, folds = load_bench_task(task, emb)
    assert table.x.shape == (100, 16) and table.targets == genes
    out = run_hest(table, folds, progress=False)
    assert out["pearson_mean"] > 0.8

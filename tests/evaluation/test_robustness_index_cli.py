"""`python -m evaluation robustness-index` end to end on generated cohorts, and its bad-input errors."""

import csv
import json

import h5py
import numpy as np
import pytest
from robustness_data import cohort

from evaluation.cli import main


def _write(tmp_path, d: dict, rows=None, extra_cols=None) -> tuple:
    manifest = tmp_path / "manifest.csv"
    cols = {
        "label": d["biology"],
        "center": d["centre"],
        "slide_id": d["slide"],
        **(extra_cols or {}),
    }
    n = len(d["x"])
    with manifest.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(list(cols))
        for i in rows if rows is not None else range(n):
            w.writerow([cols[c][i] for c in cols])
    teacher = tmp_path / "teacher.npy"
    np.save(teacher, d["x"])
    student = tmp_path / "student.h5"
    with h5py.File(student, "w") as f:
        # A student that ignores the centre: the class signal plus noise.
        f["features"] = d["x_clean"]
    return manifest, teacher, student


def _cohort() -> dict:
    d = cohort(classes=2, centres=3, slides_per_cell=2, tiles_per_slide=10, centre_strength=1.5)
    clean = cohort(classes=2, centres=3, slides_per_cell=2, tiles_per_slide=10, centre_strength=0.0)
    d["x_clean"] = clean["x"]
    return d


def test_teacher_vs_student_side_by_side(tmp_path, capsys) -> None:
    d = _cohort()
    manifest, teacher, student = _write(tmp_path, d)
    out = tmp_path / "out"
    main(
        [
            "robustness-index",
            "--embeddings",
            f"teacher={teacher}",
            f"student={student}",
            "--manifest",
            str(manifest),
            "--k",
            "11",
            "--n-bootstrap",
            "50",
            "--out",
            str(out),
        ]
    )
    results = json.loads((out / "results.json").read_text())
    assert list(results["encoders"]) == ["teacher", "student"]
    t, s = results["encoders"]["teacher"], results["encoders"]["student"]
    assert s["ri"]["ri"] > t["ri"]["ri"] and s["croma"]["croma"] > t["croma"]["croma"]
    assert results["differences"]["student - teacher"]["ri"] == pytest.approx(
        s["ri"]["ri"] - t["ri"]["ri"]
    )
    assert t["ri"]["k"] == 11 and len(t["ri"]["ri_curve"]) == min(100, t["ri"]["max_usable_k"])
    with (out / "table.csv").open() as f:
        assert [r["encoder"] for r in csv.DictReader(f)] == ["teacher", "student"]
    violins = np.load(out / "croma_values.npz")
    assert violins["student"].shape == (len(d["x"]),)
    assert "student: RI=" in capsys.readouterr().out


def test_index_column_and_named_k(tmp_path) -> None:
    d = _cohort()
    perm = np.random.default_rng(0).permutation(len(d["x"]))
    manifest, teacher, _ = _write(
        tmp_path, d, rows=perm, extra_cols={"index": np.arange(len(d["x"]))}
    )
    out = tmp_path / "out"
    main(
        [
            "robustness-index",
            "--embeddings",
            str(teacher),
            "--manifest",
            str(manifest),
            "--k",
            "camelyon",
            "--n-bootstrap",
            "0",
            "--out",
            str(out),
        ]
    )
    ri = json.loads((out / "results.json").read_text())["encoders"]["teacher"]["ri"]
    from evaluation.robustness_index import robustness_index

    direct = robustness_index(d["x"], d["biology"], d["centre"], d["slide"], k=11, n_bootstrap=0)
    assert ri["ri"] == pytest.approx(direct["ri"]) and ri["k"] == 11


def test_one_class_is_reported_nan(tmp_path) -> None:
    d = _cohort()
    d["biology"] = np.full(len(d["x"]), "tumour")
    manifest, teacher, _ = _write(tmp_path, d)
    out = tmp_path / "out"
    main(
        [
            "robustness-index",
            "--embeddings",
            str(teacher),
            "--manifest",
            str(manifest),
            "--k",
            "5",
            "--out",
            str(out),
        ]
    )
    r = json.loads((out / "results.json").read_text())["encoders"]["teacher"]
    assert r["ri"]["ri"] is None and "one biological class" in r["ri"]["note"]
    assert r["croma"]["croma"] is None


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "missing column(s) centre, slide"),
        ("nan", "NaN/inf in 1 row"),
        ("k", "k=500 must be in"),
        ("paired", "--paired needs a group column"),
        ("rows", "has 120 rows, the manifest 119"),
    ],
)
def test_bad_input_exits_with_its_reason(tmp_path, capsys, case: str, message: str) -> None:
    d = _cohort()
    manifest, teacher, _ = _write(tmp_path, d, rows=range(119) if case == "rows" else None)
    if case == "missing":
        manifest.write_text("label,x\na,1\n")
    if case == "nan":
        x = d["x"].copy()
        x[4, 2] = np.nan
        np.save(teacher, x)
    argv = [
        "robustness-index",
        "--embeddings",
        str(teacher),
        "--manifest",
        str(manifest),
        "--k",
        "500" if case == "k" else "5",
        "--out",
        str(tmp_path / "out"),
    ]
    if case == "paired":
        argv.append("--paired")
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out" / "results.json").exists()


def test_report_gets_a_robustness_index_section(tmp_path) -> None:
    from evaluation.report import build_report

    d = _cohort()
    manifest, teacher, student = _write(tmp_path, d)
    run_dir = tmp_path / "ri"
    main(
        [
            "robustness-index",
            "--embeddings",
            f"teacher={teacher}",
            f"student={student}",
            "--manifest",
            str(manifest),
            "--k",
            "11",
            "--n-bootstrap",
            "0",
            "--out",
            str(run_dir),
        ]
    )
    html, _ = build_report([run_dir], tmp_path / "report")
    md = (tmp_path / "report" / "report.md").read_text()
    assert "Robustness Index, MaRI, CRoMa" in md and "| student |" in md
    assert "student - teacher" in md and "Other runs" not in md
    assert (tmp_path / "report" / "ri_ri_curve.png").stat().st_size > 1000
    assert (tmp_path / "report" / "ri_croma.png").stat().st_size > 1000
    assert html.is_file()


def test_pathorob_layout_paired_with_ood_dropped(tmp_path) -> None:
    # PathoROB's layout: metadata CSV + <features>/<model>/<dataset>/<centre>.npz keyed slide-patch.
    parts = [
        cohort(classes=2, centres=2, slides_per_cell=2, tiles_per_slide=20, seed=s) for s in (1, 2)
    ]
    rows, feats = [], {}
    for i, p in enumerate(parts):
        for j in range(len(p["x"])):
            centre, slide = f"{p['centre'][j]} {i}", f"{p['slide'][j]}-{i}"
            rows.append([f"pair{i}", slide, str(j), f"{p['biology'][j]}-{i}", centre])
            feats.setdefault(centre, {})[f"{slide}-{j}"] = p["x"][j]
    rows.append(["OOD", "ood-slide", "0", "class0-0", "centre0 0"])  # dropped, has no features
    meta = tmp_path / "tcga_2x2.csv"
    with meta.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["subset", "slide_id", "patch_id", "biological_class", "medical_center"])
        w.writerows(rows)
    folder = tmp_path / "features" / "student" / "tcga"
    folder.mkdir(parents=True)
    for centre, d in feats.items():
        np.savez(folder / f"{centre.replace(' ', '_')}.npz", **d)
    out = tmp_path / "out"
    main(
        [
            "robustness-index",
            "--embeddings",
            f"student={folder}",
            "--manifest",
            str(meta),
            "--paired",
            "--drop-group",
            "OOD",
            "--k",
            "tcga",
            "--n-bootstrap",
            "20",
            "--out",
            str(out),
        ]
    )
    results = json.loads((out / "results.json").read_text())
    assert results["dropped_rows"] == 1 and results["design"] == "paired_2x2"
    from evaluation.robustness_index import paired_robustness_index

    kept = [row for row in rows if row[0] != "OOD"]
    direct = paired_robustness_index(
        np.vstack([p["x"] for p in parts]),
        [row[3] for row in kept],
        [row[4] for row in kept],
        [row[1] for row in kept],
        [row[0] for row in kept],
        k=61,
        n_bootstrap=20,
    )
    ri = results["encoders"]["student"]["ri"]
    assert ri["k"] == 61 and ri["ri"] == pytest.approx(direct["ri"], abs=1e-6)
    assert ri["ri_std"] == pytest.approx(direct["ri_std"], abs=1e-6)


def test_apd_nipd_and_clustering_in_the_outputs(tmp_path, capsys) -> None:
    d = cohort(classes=2, centres=3, slides_per_cell=4, tiles_per_slide=3, dim=8, seed=12)
    d["x_clean"] = d["x"]
    manifest, teacher, _ = _write(tmp_path, d)
    out = tmp_path / "out"
    argv = ["robustness-index", "--embeddings", str(teacher), "--manifest", str(manifest)]
    argv += ["--k", "5", "--n-bootstrap", "0", "--apd-iterations", "2"]
    argv += ["--clustering-trials", "3", "--clustering-k", "2"]
    main([*argv, "--out", str(out)])
    r = json.loads((out / "results.json").read_text())["encoders"]["teacher"]
    # Three centres: no PathoROB sweep design, reported as NaN (null) with the reason.
    assert r["probe"]["apd"] is None and "3 centres x 2 classes" in r["probe"]["note"]
    assert r["clustering"]["n_evaluated"] == 3 and r["clustering"]["clustering_score"] is not None
    main([*argv, "--apd-centres", "centre0", "centre2", "--out", str(tmp_path / "two")])
    r = json.loads((tmp_path / "two" / "results.json").read_text())["encoders"]["teacher"]
    assert r["probe"]["design"] == "two_centre" and r["probe"]["note"] is None
    assert r["probe"]["cramers_v"] == [0.0, 1.0] and len(r["probe"]["accuracies"]) == 2
    with (tmp_path / "two" / "table.csv").open() as f:
        row = next(csv.DictReader(f))
    assert float(row["apd"]) == pytest.approx(r["probe"]["apd"])
    assert float(row["clustering_score"]) == pytest.approx(r["clustering"]["clustering_score"])
    printed = capsys.readouterr().out
    assert "APD=nan nIPD=nan CS=" in printed and "3 centres x 2 classes" in printed
    assert f"APD={r['probe']['apd']:.4f}" in printed

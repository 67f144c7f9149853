"""The report renders every kind of run, and every image it references exists and opens."""

import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from evaluation.cli import main
from evaluation.outputs import write_run
from evaluation.report import build_report


def _robustness_run(out, rng) -> None:
    """A robustness run folder as the CLI writes it, from generated features (no models needed)."""
    from evaluation.plism import evaluate_slides
    from evaluation.robustness import projection_sample

    base = rng.normal(size=(20, 8))
    conds = {f"s{i}_m{j}": (f"s{i}", f"m{j}") for i in range(2) for j in range(2)}
    feats = {
        model: {c: base + scale * rng.normal(size=base.shape) for c in conds}
        for model, scale in (("teacher", 1.0), ("student", 0.3))
    }
    results = {m: evaluate_slides(f, conds, progress=False) for m, f in feats.items()}
    out.mkdir()
    np.savez(out / "projection.npz", **projection_sample(feats, conds))
    payload = {
        "models": {
            m: {"leaderboard": r.leaderboard, "summary": r.summary} for m, r in results.items()
        },
        "conditions": [{"name": n, "stain": s, "scanner": c} for n, (s, c) in conds.items()],
        "n_tiles": 20,
        "slides": ["generated"],
    }
    rows = [{"model": m, **row} for m, r in results.items() for row in r.rows]
    write_run(out, "robustness", {}, payload, rows, table="pairs.csv")


def _train_run(out) -> None:
    (out / "version_0").mkdir(parents=True)
    lines = ["epoch,step,train/loss,train/dino_loss,lr"] + [
        f"0,{s},{3 - s / 50:.3f},{2 - s / 80:.3f},0.001" for s in range(0, 100, 10)
    ]
    (out / "version_0" / "metrics.csv").write_text("\n".join(lines) + "\n")
    summary = {
        "teacher": "h-optimus-0",
        "student": "h0-mini",
        "steps": 100,
        "loss_start_mean": 3.0,
        "loss_end_mean": 1.1,
        "fidelity_before": {"tiles": 40, "cls": {"linear_cka": 0.2, "ridge_r2": 0.1}},
        "fidelity_after": {
            "ema": {"tiles": 40, "cls": {"linear_cka": 0.8, "ridge_r2": 0.6}},
            "student": {"tiles": 40, "cls": {"linear_cka": 0.7, "ridge_r2": 0.5}},
        },
    }
    (out / "summary.json").write_text(json.dumps(summary))


@pytest.fixture
def run_dirs(tmp_path):
    rng = np.random.default_rng(0)
    _robustness_run(tmp_path / "robustness", rng)
    _train_run(tmp_path / "train")
    x = rng.normal(size=(60, 6)).astype(np.float32)
    np.save(tmp_path / "emb.npy", x)
    (tmp_path / "labels.csv").write_text(
        "index,label,split\n"
        + "".join(
            f"{i},{'ab'[int(x[i, 0] > 0)]},{'train' if i < 40 else 'test'}\n" for i in range(60)
        )
    )
    for name in ("teacher_probe", "student_probe"):
        main(
            [
                "probe",
                "--embeddings",
                str(tmp_path / "emb.npy"),
                "--labels",
                str(tmp_path / "labels.csv"),
                "--probes",
                "logistic",
                "knn",
                "--out",
                str(tmp_path / name),
            ]
        )
    return [tmp_path / d for d in ("robustness", "train", "teacher_probe", "student_probe")]


def test_report_renders_all_images(tmp_path, run_dirs) -> None:
    out = tmp_path / "report"
    main(["report", *map(str, run_dirs), "--out", str(out)])
    page = (out / "index.html").read_text()
    md = (out / "report.md").read_text()
    srcs = re.findall(r"<img src='([^']+)'", page)
    assert len(srcs) == 4  # heatmap, top-k bars, projection, loss curves
    assert sorted(srcs) == sorted(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md))
    for src in srcs:
        with Image.open(out / src) as img:
            img.verify()
    for text in (
        "teacher",
        "student",
        "leaderboard",
        "teacher_probe",
        "student_probe",
        "after (EMA, exported)",
        "cls · linear_cka",
    ):
        assert text in page, text
    assert json.loads((out / "results.json").read_text())["index"] == "index.html"


def test_report_rejects_empty_folder(tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"no results\.json"):
        build_report([tmp_path / "empty"], tmp_path / "out")


@pytest.mark.slow
def test_report_screenshot_headless_chromium(tmp_path, run_dirs) -> None:
    browser = next(
        (
            shutil.which(b)
            for b in ("chromium", "chromium-browser", "google-chrome")
            if shutil.which(b)
        ),
        None,
    )
    if browser is None:
        pytest.skip("no headless Chromium on PATH")
    page, _ = build_report(run_dirs, tmp_path / "report")
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--screenshot={shot}",
            "--window-size=1200,3000",
            page.as_uri(),
        ],
        check=True,
        timeout=120,
    )
    with Image.open(shot) as img:
        arr = np.asarray(img.convert("L"))
    assert arr.std() > 10  # not a blank page


def _single_staining_plism_run(tmp_path, rng):
    """`python -m evaluation plism` on 3 scanners of one staining: no cross-staining pairs."""
    import h5py

    coords = np.array([[224 * i, 224 * j] for i in range(4) for j in range(3)], dtype=np.int64)
    base = rng.normal(size=(len(coords), 8)).astype(np.float32)
    emb = tmp_path / "emb"
    emb.mkdir()
    for scanner in ("AT2", "GT450", "S60"):
        with h5py.File(emb / f"HE_{scanner}.h5", "w") as f:
            f["features"] = base + 0.3 * rng.normal(size=base.shape).astype(np.float32)
            f["coords"] = coords
    main(["plism", str(emb), "--top-k", "1", "3", "--out", str(tmp_path / "plism")])
    return tmp_path / "plism"


def test_report_shows_empty_plism_groups_as_no_pairs(tmp_path) -> None:
    plism = _single_staining_plism_run(tmp_path, np.random.default_rng(1))
    out = tmp_path / "report"
    main(["report", str(plism), "--out", str(out)])
    page = (out / "index.html").read_text()
    assert "no pairs" in page
    for src in re.findall(r"<img src='([^']+)'", page):
        with Image.open(out / src) as img:
            img.verify()


def test_failing_report_writes_nothing(tmp_path, run_dirs, monkeypatch) -> None:
    from evaluation.report import plots

    def broken(*args, **kwargs):
        raise RuntimeError("plotting failed")

    monkeypatch.setattr(plots, "loss_curves", broken)  # the last figure: earlier PNGs exist by then
    out = tmp_path / "report"
    with pytest.raises(RuntimeError, match="plotting failed"):
        main(["report", *map(str, run_dirs), "--out", str(out)])
    assert not out.exists() or not any(out.iterdir())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".report")]

"""`python -m evaluation` end to end on small generated inputs, one test per subcommand."""

import csv
import json

import h5py
import numpy as np
import pytest
from PIL import Image

from evaluation.cli import COMMANDS, main
from evaluation.plism import leaderboard_score


def _read_run(out):
    results = json.loads((out / "results.json").read_text())
    args = json.loads((out / "args.json").read_text())
    with (out / results["table"]).open() as f:
        rows = list(csv.DictReader(f))
    assert not list(out.glob("*.tmp*"))
    return results, args, rows


@pytest.mark.parametrize("command", [m.__name__.rsplit(".", 1)[1] for m in COMMANDS])
def test_help(command, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert "--out" in capsys.readouterr().out


def _plism_h5(folder, rng) -> None:
    folder.mkdir()
    coords = np.array([[224 * i, 224 * j] for i in range(6) for j in range(5)], dtype=np.int64)
    base = rng.normal(size=(30, 16))
    for s in range(3):
        for c in range(2):
            with h5py.File(folder / f"ST{s}_SC{c}_to_GMH_S60.tif.h5", "w") as f:
                f["features"] = (
                    base + 0.4 * s + 0.3 * (c + 1) * rng.normal(size=base.shape)
                ).astype(np.float32)
                f["coords"] = coords


def test_plism_cli(tmp_path) -> None:
    _plism_h5(tmp_path / "h5", np.random.default_rng(0))
    out = tmp_path / "out"
    main(
        [
            "plism",
            str(tmp_path / "h5"),
            "--out",
            str(out),
            "--write-plismbench",
            "tiny",
            "--dtype",
            "float16",
        ]
    )
    results, args, rows = _read_run(out)
    assert results["n_pairs"] == 15 and len(rows) == 15 and args["dtype"] == "float16"
    assert results["leaderboard"] == pytest.approx(leaderboard_score(results["summary"]))
    med = np.median([float(r["cosine_similarity"]) for r in rows])
    assert results["summary"]["all"]["cosine_similarity"]["median"] == pytest.approx(med)
    assert len(list((out / "plismbench" / "tiny").glob("*/features.npy"))) == 6


def test_probe_cli_embeddings_and_folder(tmp_path, tiny_models) -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, size=120)
    x = (rng.normal(size=(120, 8)) + 3 * y[:, None]).astype(np.float32)
    np.save(tmp_path / "emb.npy", x)
    with (tmp_path / "labels.csv").open("w") as f:
        f.write("index,label,split\n")
        f.writelines(
            f"{i},{'tumour' if y[i] else 'normal'},{'train' if i < 80 else 'test'}\n"
            for i in range(120)
        )
    out = tmp_path / "probe"
    main(
        [
            "probe",
            "--embeddings",
            str(tmp_path / "emb.npy"),
            "--labels",
            str(tmp_path / "labels.csv"),
            "--max-steps",
            "100",
            "--seeds",
            "0",
            "1",
            "--out",
            str(out),
        ]
    )
    results, _, rows = _read_run(out)
    assert {r["probe"] for r in rows} == {"linear", "logistic", "knn"}
    assert results["probes"]["logistic"]["balanced_accuracy"] > 0.9

    for split in ("train", "test"):
        for cls, value in (("dark", 40), ("light", 220)):
            for i in range(3):
                p = tmp_path / "tiles" / split / cls / f"{i}.png"
                p.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.full((40, 40, 3), value + 5 * i, np.uint8)).save(p)
    out2 = tmp_path / "probe_folder"
    main(
        [
            "probe",
            "--tile-folder",
            str(tmp_path / "tiles"),
            "--model",
            str(tiny_models["student"]),
            "--probes",
            "knn",
            "logistic",
            "--knn-k",
            "3",
            "--out",
            str(out2),
        ]
    )
    results, _, _ = _read_run(out2)
    assert results["data"]["dim"] == 32 and results["data"]["n_train"] == 6
    assert results["probes"]["knn"]["balanced_accuracy"] == 1.0


def test_hest_cli(tmp_path) -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(90, 12))
    y = x @ rng.normal(size=(12, 3))
    np.save(tmp_path / "emb.npy", x)
    with (tmp_path / "targets.csv").open("w") as f:
        f.write("sample_id,a,b,c\n")
        f.writelines(f"P{i % 3},{r[0]},{r[1]},{r[2]}\n" for i, r in enumerate(y))
    (tmp_path / "splits").mkdir()
    for k in range(3):
        (tmp_path / "splits" / f"train_{k}.csv").write_text(
            "sample_id\n" + "".join(f"P{j}\n" for j in range(3) if j != k)
        )
        (tmp_path / "splits" / f"test_{k}.csv").write_text(f"sample_id\nP{k}\n")
    out = tmp_path / "hest"
    main(
        [
            "hest",
            "--embeddings",
            str(tmp_path / "emb.npy"),
            "--targets",
            str(tmp_path / "targets.csv"),
            "--splits",
            str(tmp_path / "splits"),
            "--out",
            str(out),
        ]
    )
    results, _, rows = _read_run(out)
    assert len(rows) == 3 and results["pearson_mean"] > 0.99


def test_fidelity_cli(tmp_path) -> None:
    rng = np.random.default_rng(3)
    coords = np.array([[i * 224, 0] for i in range(80)], dtype=np.int64)
    teacher = rng.normal(size=(80, 24)).astype(np.float32)
    student = (teacher @ rng.normal(size=(24, 12))).astype(np.float32)
    for name, arr in (("student", student), ("teacher", teacher)):
        (tmp_path / name).mkdir()
        with h5py.File(tmp_path / name / "slide1.h5", "w") as f:
            f["features"], f["coords"] = arr, coords
    with (tmp_path / "labels.csv").open("w") as f:
        f.write("slide,x,y,label,split\n")
        f.writelines(
            f"slide1,{i * 224},0,{'a' if teacher[i, 0] > 0 else 'b'},{'train' if i < 60 else 'test'}\n"
            for i in range(80)
        )
    out = tmp_path / "fid"
    main(
        [
            "fidelity",
            "--student",
            str(tmp_path / "student"),
            "--teacher",
            str(tmp_path / "teacher"),
            "--labels",
            str(tmp_path / "labels.csv"),
            "--out",
            str(out),
        ]
    )
    results, _, _ = _read_run(out)
    assert results["fidelity"]["n_tiles"] == 80
    assert 0 < results["fidelity"]["linear_cka"] <= 1
    assert set(results["probe_retention"]) == {"logistic", "knn"}


def test_robustness_cli(tmp_path, tiny_models) -> None:
    out = tmp_path / "rob"
    main(
        [
            "robustness",
            "--teacher-model",
            str(tiny_models["teacher"]),
            "--student-model",
            str(tiny_models["student"]),
            "--stains",
            "2",
            "--scanners",
            "2",
            "--max-tiles",
            "6",
            "--size",
            "64",
            "--out",
            str(out),
        ]
    )
    results, _, rows = _read_run(out)
    assert set(results["models"]) == {"teacher", "student"}
    assert len(rows) == 2 * 6 and results["n_tiles"] == 6
    assert len(results["conditions"]) == 4
    proj = np.load(out / "projection.npz")
    assert proj["teacher_features"].shape == (24, 48) and proj["student_features"].shape == (24, 32)


def test_bad_input_exits_with_message(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["plism", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    assert exc.value.code == 2
    assert "no such file" in capsys.readouterr().err


def test_fidelity_cli_from_slides(tmp_path, tiny_models) -> None:
    from slides import SAMPLE_SLIDE

    out = tmp_path / "fid_models"
    main(
        [
            "fidelity",
            "--slides",
            str(SAMPLE_SLIDE),
            "--teacher-model",
            str(tiny_models["teacher"]),
            "--student-model",
            str(tiny_models["student"]),
            "--max-tiles",
            "12",
            "--size",
            "64",
            "--k",
            "3",
            "--out",
            str(out),
        ]
    )
    results, _, _ = _read_run(out)
    assert results["fidelity"]["n_tiles"] == 12
    assert (results["fidelity"]["student_dim"], results["fidelity"]["teacher_dim"]) == (32, 48)

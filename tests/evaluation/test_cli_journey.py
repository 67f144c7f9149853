"""What a new user ran with `python -m evaluation` on their own data, command by command."""

import json

import numpy as np

from evaluation.cli import main


def test_probe_without_val_split_holds_out_train_and_says_so(tmp_path, capsys) -> None:
    """Tiles with slide ids and only train/test rows (LUAD/LUSC-like): early stopping must not
    watch the test split, and the output must say what it watched."""
    rng = np.random.default_rng(0)
    slides = np.repeat([f"slide{i}" for i in range(8)], 15)
    y = np.repeat(np.arange(8) % 2, 15)
    x = (rng.normal(size=(len(y), 8)) + 2 * y[:, None]).astype(np.float32)
    np.save(tmp_path / "emb.npy", x)
    with (tmp_path / "labels.csv").open("w") as f:
        f.write("index,label,split,slide\n")
        f.writelines(
            f"{i},{'LUAD' if y[i] else 'LUSC'},{'test' if s in ('slide0', 'slide1') else 'train'},{s}\n"
            for i, s in enumerate(slides)
        )
    out = tmp_path / "probe"
    main(
        [
            "probe",
            "--embeddings",
            str(tmp_path / "emb.npy"),
            "--labels",
            str(tmp_path / "labels.csv"),
            "--probes",
            "linear",
            "--max-steps",
            "60",
            "--seeds",
            "0",
            "--out",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert "early stopping on" in printed and "held out, grouped by slide" in printed
    results = json.loads((out / "results.json").read_text())
    linear = results["probes"]["linear"]
    assert linear["monitor_split"] == "train-holdout" and linear["eval_split"] == "test"
    assert linear["config"]["weight_decay"] == 0.01


def test_robustness_shows_one_progress_bar_at_a_time(tmp_path, tiny_models, monkeypatch) -> None:
    """24 conditions x 2 models used to print 48 nested bars; now one bar per stage."""
    import tqdm.auto

    import evaluation.encoder
    import evaluation.plism.groups
    import evaluation.robustness

    open_bars, most, total = [0], [0], [0]

    class CountingBar(tqdm.auto.tqdm):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            if not self.disable:
                open_bars[0] += 1
                total[0] += 1
                most[0] = max(most[0], open_bars[0])

        def close(self) -> None:
            if not self.disable and not getattr(self, "_counted_closed", False):
                self._counted_closed = True
                open_bars[0] -= 1
            super().close()

    for module in (evaluation.robustness, evaluation.encoder, evaluation.plism.groups):
        monkeypatch.setattr(module, "tqdm", CountingBar)
    main(
        [
            "robustness",
            "--teacher-model",
            str(tiny_models["teacher"]),
            "--student-model",
            str(tiny_models["student"]),
            "--stains",
            "3",
            "--scanners",
            "2",
            "--max-tiles",
            "4",
            "--size",
            "64",
            "--out",
            str(tmp_path / "rob"),
        ]
    )
    assert most[0] == 1
    assert total[0] == 3  # reading tiles, embedding, PLISM pairs
    assert (tmp_path / "rob" / "results.json").is_file()


def _scanner_folders(root, rng, n_side: int = 3) -> None:
    """One region imaged by 5 scanners, embedded per scanner: `<root>/<scanner>/region.h5`.

    Like real scans: images a few pixels apart in size lose an edge column, tissue detection
    keeps different tiles, and one scanner's grid sits 2 px off.
    """
    import h5py

    full = np.array([[224 * i, 224 * j] for i in range(n_side) for j in range(n_side)])
    base = rng.normal(size=(len(full), 8)).astype(np.float32)
    for s, scanner in enumerate(("AT2", "GT450", "S360", "P1000", "KF")):
        keep = np.ones(len(full), dtype=bool)
        keep[s % len(full)] = s == 0  # each scanner but the first misses one tile
        coords = full[keep] + (2 if scanner == "KF" else 0)
        feats = base[keep] + 0.2 * rng.normal(size=(keep.sum(), 8)).astype(np.float32)
        order = rng.permutation(len(coords))
        (root / scanner).mkdir(parents=True)
        with h5py.File(root / scanner / "region.h5", "w") as f:
            f["features"] = feats[order]
            f["features"].attrs["encoder"] = "vit_small (run1/export)"
            f["coords"] = coords[order].astype(np.int64)


def test_plism_on_a_small_multi_scanner_set(tmp_path, capsys) -> None:
    """No renaming, no shared grid, no cropping, default --top-k: the folders are the input."""
    _scanner_folders(tmp_path / "emb", np.random.default_rng(0))
    out = tmp_path / "plism"
    main(["plism", str(tmp_path / "emb"), "--out", str(out)])
    captured = capsys.readouterr()
    results = json.loads((out / "results.json").read_text())
    assert results["n_slides"] == 5 and results["n_pairs"] == 10
    assert results["n_tiles"] == 9 - 4  # tiles every scanner has
    assert results["top_k"] == [1, 3, 5]
    assert "k = [10] skipped" in captured.err and "tiles dropped" in captured.err
    assert results["leaderboard"] is None
    assert "top-10" in results["leaderboard_note"]
    assert "leaderboard=None (needs top-10" in captured.out
    assert results["encoder"] == "vit_small (run1/export)"
    assert results["summary"]["cross_staining"]["cosine_similarity"]["n"] == 0

    main(["report", str(out), "--out", str(tmp_path / "report")])
    page = (tmp_path / "report" / "index.html").read_text()
    assert "no pairs" in page and "needs top-10" in page
    assert "vit_small (run1/export)" in page


def test_plism_condition_csv_and_missing_file(tmp_path) -> None:
    import pytest

    from evaluation.plism import SlideSetError
    from evaluation.plism.conditions import read_condition_csv

    _scanner_folders(tmp_path / "emb", np.random.default_rng(1), n_side=4)
    rows = [f"emb/{s}/region.h5,{s},HE,{s}" for s in ("AT2", "GT450", "S360")]
    (tmp_path / "set.csv").write_text("path,condition,staining,scanner\n" + "\n".join(rows) + "\n")
    out = tmp_path / "plism"
    main(["plism", str(tmp_path / "set.csv"), "--out", str(out)])
    results = json.loads((out / "results.json").read_text())
    assert results["n_slides"] == 3 and results["top_k"] == [1, 3, 5, 10]
    assert "cross-staining" in results["leaderboard_note"]

    (tmp_path / "emb" / "GT450" / "region.h5").rename(tmp_path / "emb" / "GT450" / "other.h5")
    with pytest.raises(SlideSetError, match=r"'other' is missing under .*the same name"):
        from evaluation.plism.conditions import find_condition_folders

        find_condition_folders(tmp_path / "emb")
    with pytest.raises(SlideSetError, match="no such file"):
        read_condition_csv(tmp_path / "set.csv")

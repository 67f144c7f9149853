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

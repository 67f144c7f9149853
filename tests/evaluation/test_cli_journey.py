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

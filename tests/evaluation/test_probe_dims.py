"""`probe --dims`: probes on the first N dimensions equal probes on hand-truncated embeddings."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from evaluation.__main__ import main
from evaluation.probes import ProbeInputError, load_labelled_embeddings, run_probes


def test_dims_probe_each_prefix_like_truncated_embeddings(tmp_path) -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, size=120)
    # the class lives in the last dimensions: the 4-prefix cannot see it, the full width can
    x = rng.normal(size=(120, 8)).astype(np.float32)
    x[:, 6:] += 3 * y[:, None]
    np.save(tmp_path / "emb.npy", x)
    labels = tmp_path / "labels.csv"
    with labels.open("w") as f:
        f.write("index,label,split\n")
        f.writelines(
            f"{i},{'a' if y[i] else 'b'},{'train' if i < 80 else 'test'}\n" for i in range(120)
        )
    out = tmp_path / "run"
    args = ["probe", "--embeddings", str(tmp_path / "emb.npy"), "--labels", str(labels)]
    main([*args, "--probes", "knn", "logistic", "--dims", "4", "--out", str(out)])
    results = json.loads((out / "results.json").read_text())
    with (out / "probes.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert sorted({int(r["dim"]) for r in rows}) == [4, 8]
    by_dim = results["probes_by_dim"]
    assert by_dim["8"]["knn"]["balanced_accuracy"] > 0.85
    assert by_dim["4"]["knn"]["balanced_accuracy"] < 0.7
    np.save(tmp_path / "cut.npy", x[:, :4])
    data = load_labelled_embeddings([tmp_path / "cut.npy"], labels)
    by_hand = run_probes(data, ["knn", "logistic"], knn_k=20)
    for probe in ("knn", "logistic"):
        assert by_dim["4"][probe]["balanced_accuracy"] == pytest.approx(
            by_hand[probe]["balanced_accuracy"]
        )


def test_dims_above_the_width_are_refused(tmp_path) -> None:
    x = np.zeros((10, 4), np.float32)
    np.save(tmp_path / "e.npy", x)
    labels = tmp_path / "l.csv"
    labels.write_text(
        "index,label,split\n"
        + "".join(f"{i},{i % 2},{'train' if i < 6 else 'test'}\n" for i in range(10))
    )
    loaded = load_labelled_embeddings([tmp_path / "e.npy"], labels)
    with pytest.raises(ProbeInputError, match="--dims 9: the embeddings have 4 dimensions"):
        loaded.prefix(9)

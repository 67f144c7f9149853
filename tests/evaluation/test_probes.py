"""Probes recover separable classes, give chance on shuffled labels, and read every input layout."""

import csv

import h5py
import numpy as np
import pytest
from PIL import Image

from evaluation.probes import (
    EVA_LAYOUTS,
    LinearProbeConfig,
    ProbeData,
    balanced_accuracy,
    build_probe_data,
    knn_predict,
    linear_probe,
    load_labelled_embeddings,
    run_probes,
    tile_folder_samples,
)


def gaussian_data(shuffle: bool = False, seed: int = 0) -> ProbeData:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(3, 16))
    y = rng.integers(0, 3, size=900)
    x = centres[y] + rng.normal(size=(900, 16))
    if shuffle:
        y = rng.permutation(y)
    splits = np.array(["train"] * 600 + ["val"] * 150 + ["test"] * 150)
    return build_probe_data(x.astype(np.float32), [str(v) for v in y], splits)


# A larger lr than eva's 3e-4 converges in few steps; the recipe itself is the default config.
FAST = LinearProbeConfig(lr=3e-3, max_steps=200, seeds=(0, 1), batch_size=64)


def test_probes_recover_separable_classes() -> None:
    results = run_probes(gaussian_data(), linear_config=FAST, progress=False)
    assert results["linear"]["balanced_accuracy_mean"] > 0.95
    assert results["logistic"]["balanced_accuracy"] > 0.95
    assert results["knn"]["balanced_accuracy"] > 0.95
    assert len(results["linear"]["runs"]) == 2


def test_probes_chance_on_shuffled_labels() -> None:
    results = run_probes(gaussian_data(shuffle=True), linear_config=FAST, progress=False)
    for name in ("logistic", "knn"):
        assert abs(results[name]["balanced_accuracy"] - 1 / 3) < 0.12, name
    assert abs(results["linear"]["balanced_accuracy_mean"] - 1 / 3) < 0.12


def test_linear_probe_early_stops() -> None:
    cfg = LinearProbeConfig(max_steps=5000, patience=2, batch_size=128, seeds=(0,))
    out = linear_probe(gaussian_data(), cfg, progress=False)
    assert out["runs"][0]["steps"] < 5000


def test_balanced_accuracy_and_knn_by_hand() -> None:
    y_true = np.array([0, 0, 0, 1])
    assert balanced_accuracy(y_true, np.array([0, 0, 1, 1])) == pytest.approx((2 / 3 + 1) / 2)
    train = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    pred = knn_predict(train, np.array([0, 0, 1]), np.array([[0.1, 1.0], [1.0, 0.2]]), 2, k=1)
    np.testing.assert_array_equal(pred, [1, 0])


def test_labels_csv_keys(tmp_path) -> None:
    rng = np.random.default_rng(1)
    feats = rng.normal(size=(6, 4)).astype(np.float32)
    coords = np.array(
        [[0, 0], [0, 224], [224, 0], [224, 224], [448, 0], [448, 224]], dtype=np.int64
    )
    with h5py.File(tmp_path / "slideA.h5", "w") as f:
        f["features"], f["coords"] = feats, coords
    rows = [
        ("slideA", 448, 224, "b", "test"),
        ("slideA", 0, 0, "a", "train"),
        ("slideA", 224, 0, "b", "train"),
    ]
    with (tmp_path / "labels.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["slide", "x", "y", "label", "split"])
        w.writerows(rows)
    data = load_labelled_embeddings([tmp_path], tmp_path / "labels.csv")
    np.testing.assert_array_equal(data.x_train, feats[[0, 2]])
    np.testing.assert_array_equal(data.x_test, feats[[5]])
    assert data.classes == ["a", "b"]
    np.save(tmp_path / "arr.npy", feats)
    with (tmp_path / "idx.csv").open("w", newline="") as f:
        f.write("index,label,split\n3,a,train\n1,b,valid\n")
    data = load_labelled_embeddings([tmp_path / "arr.npy"], tmp_path / "idx.csv")
    np.testing.assert_array_equal(data.x_val, feats[[1]])
    with pytest.raises(ValueError, match="unknown split"):
        (tmp_path / "bad.csv").write_text("index,label,split\n0,a,training\n")
        load_labelled_embeddings([tmp_path / "arr.npy"], tmp_path / "bad.csv")


def _img(path, value: int = 128) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(path)


def test_tile_folder_and_eva_layouts(tmp_path) -> None:
    for split in ("train", "val"):
        for cls in ("tumour", "stroma"):
            _img(tmp_path / "tiles" / split / cls / f"{split}_{cls}.png")
    samples = tile_folder_samples(tmp_path / "tiles")
    assert {(s.split, s.label) for s in samples} == {
        (a, b) for a in ("train", "val") for b in ("tumour", "stroma")
    }

    bach = tmp_path / "bach" / "ICIAR2018_BACH_Challenge" / "Photos"
    for cls in ["Benign", "InSitu", "Invasive", "Normal"]:
        for i in range(100):
            (bach / cls).mkdir(parents=True, exist_ok=True)
            (bach / cls / f"{cls[0].lower()}{i:03d}.tif").write_bytes(b"")
    samples, classes = EVA_LAYOUTS["bach"](tmp_path / "bach")
    assert len(samples) == 400 and classes[0] == "Benign"
    assert sum(s.split == "train" for s in samples) == 268
    assert (
        samples[41].split == "val"
        and samples[59].split == "train"
        and samples[399].label == "Normal"
    )

    crc = tmp_path / "crc"
    for folder in ("NCT-CRC-HE-100K", "CRC-VAL-HE-7K"):
        for cls in ["ADI", "BACK", "DEB", "LYM", "MUC", "MUS", "NORM", "STR", "TUM"]:
            _img(crc / folder / cls / f"{cls}-0001.tif")
    samples, classes = EVA_LAYOUTS["crc"](crc)
    assert len(samples) == 18 and {s.split for s in samples} == {"train", "val"}

    mhist = tmp_path / "mhist"
    _img(mhist / "images" / "MHIST_aaa.png")
    _img(mhist / "images" / "MHIST_bbb.png")
    (mhist / "annotations.csv").write_text(
        "Image Name,Majority Vote Label,Number of Annotators who Selected SSA (Out of 7),Partition\n"
        "MHIST_aaa.png,SSA,6,train\nMHIST_bbb.png,HP,1,test\n"
    )
    samples, classes = EVA_LAYOUTS["mhist"](mhist)
    assert [(s.label, s.split) for s in samples] == [("SSA", "train"), ("HP", "test")]

    pcam = tmp_path / "pcam"
    pcam.mkdir()
    for tag, n in (("train", 3), ("valid", 2), ("test", 2)):
        with h5py.File(pcam / f"camelyonpatch_level_2_split_{tag}_x.h5", "w") as f:
            f["x"] = np.zeros((n, 96, 96, 3), np.uint8)
        with h5py.File(pcam / f"camelyonpatch_level_2_split_{tag}_y.h5", "w") as f:
            f["y"] = (np.arange(n) % 2).reshape(n, 1, 1, 1).astype(np.uint8)
    samples, classes = EVA_LAYOUTS["pcam"](pcam)
    assert len(samples) == 7 and samples[1].label == "tumor" and samples[3].split == "val"


def test_linear_probe_defaults_are_eva_recipe() -> None:
    # kaiko-ai/eva configs/vision/pathology/offline/classification/crc.yaml (0fa9bce6) sets only
    # AdamW's lr, so torch's default weight decay applies.
    import inspect

    import torch

    torch_default = inspect.signature(torch.optim.AdamW).parameters["weight_decay"].default
    cfg = LinearProbeConfig()
    assert (cfg.lr, cfg.weight_decay, cfg.batch_size, cfg.max_steps, len(cfg.seeds)) == (
        3e-4,
        torch_default,
        256,
        12_500,
        5,
    )
    assert torch_default == 0.01


def _train_test_only(n_slides: int = 6, per_slide: int = 20, seed: int = 0) -> ProbeData:
    """Small train/test data with slide ids and no 'val' split (like a LUAD/LUSC tile set)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=1.5, size=(2, 16))
    slides = np.repeat([f"s{i}" for i in range(n_slides)], per_slide)
    y = np.repeat(np.arange(n_slides) % 2, per_slide)
    x = centres[y] + rng.normal(size=(len(y), 16))
    splits = np.where(np.isin(slides, ["s0", "s1"]), "test", "train")
    return build_probe_data(x.astype(np.float32), [str(v) for v in y], splits, groups=list(slides))


def test_linear_probe_never_watches_the_scored_split_by_default() -> None:
    data = _train_test_only()
    cfg = LinearProbeConfig(lr=3e-3, max_steps=50, seeds=(0, 1), min_steps=0)
    out = linear_probe(data, cfg, progress=False)
    assert out["eval_split"] == "test"
    assert out["monitor_split"] == "train-holdout"
    assert out["monitor"]["grouped_by"] == "slide" and not out["monitor"]["watches_scored_split"]
    eva = linear_probe(data, LinearProbeConfig(**{**cfg.__dict__, "monitor": "eva"}), False)
    assert eva["monitor_split"] == "test" and eva["monitor"]["watches_scored_split"]


def test_holdout_keeps_slides_together() -> None:
    from evaluation.probes import holdout_split

    data = _train_test_only()
    for seed in range(5):
        held = holdout_split(data.y_train, data.groups_train, 0.2, seed)
        fit, watched = set(data.groups_train[held.fit]), set(data.groups_train[held.monitor])
        assert fit and watched and not fit & watched
        assert len(held.fit) + len(held.monitor) == len(data.y_train)
    rows = holdout_split(data.y_train, None, 0.2, 0)
    assert rows.grouped_by is None and set(data.y_train[rows.monitor]) == {0, 1}


def test_linear_probe_warns_when_it_stops_early() -> None:
    cfg = LinearProbeConfig(max_steps=5000, patience=1, batch_size=128, seeds=(0,))
    with pytest.warns(UserWarning, match="early stopping fired after"):
        out = linear_probe(gaussian_data(), cfg, progress=False)
    assert out["runs"][0]["early_stopped"] and out["warnings"]


def test_grouped_holdout_never_takes_a_large_group_over_the_share() -> None:
    from evaluation.probes import holdout_split

    # the walk-through's case: one slide of 488 rows and two of 25; 20 % is 107 rows
    groups = np.array(["big"] * 488 + ["a"] * 25 + ["b"] * 25)
    y = np.arange(len(groups)) % 2
    for seed in range(20):
        held = holdout_split(y, groups, 0.2, seed)
        assert len(held.monitor) <= 0.2 * len(y), (seed, len(held.monitor))
        assert len(held.monitor) > 0 and len(held.fit) > 0
    # every group alone over the share: the smallest one is held out
    held = holdout_split(np.zeros(30, int), np.array(["x"] * 20 + ["y"] * 10), 0.1, 0)
    assert len(held.monitor) == 10

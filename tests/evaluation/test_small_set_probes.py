"""Leave-one-out probes, the colour-histogram baseline and labelled folders in both layouts."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import LeaveOneOut, cross_val_predict
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from evaluation.baselines import colour_histogram
from evaluation.probes.data import ProbeInputError
from evaluation.probes.loo import loo_k, loo_knn, loo_logistic
from evaluation.probes.sources import labeled_folder_samples


def _blobs(per_class: int = 3, classes: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, 8)) * 3
    y = np.repeat(np.arange(classes), per_class)
    return centres[y] + rng.normal(size=(len(y), 8)), y


def test_loo_knn_caps_k_at_the_smallest_class_and_matches_sklearn() -> None:
    x, y = _blobs()
    assert loo_k(y, 20) == 2  # 3 per class: 2 possible same-class neighbours
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    knn = KNeighborsClassifier(n_neighbors=2, metric="cosine", weights="distance")
    expected = balanced_accuracy_score(y, cross_val_predict(knn, unit, y, cv=LeaveOneOut()))
    assert loo_knn(x, y, k=20) == pytest.approx(expected)
    assert loo_knn(x, y, k=20) > 0.9  # separable blobs; k = 20 uncapped would score ~0


def test_loo_logistic_is_sklearn_leave_one_out() -> None:
    x, y = _blobs(per_class=4)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=0))
    expected = balanced_accuracy_score(y, cross_val_predict(model, x, y, cv=LeaveOneOut()))
    assert loo_logistic(x, y) == pytest.approx(expected)


def test_colour_histogram_counts_each_channel() -> None:
    img = np.zeros((4, 4, 3), dtype=np.uint8)
    img[..., 0] = 255
    img[:2, :, 1] = 128
    h = colour_histogram([img], bins=4)
    assert h.shape == (1, 12)
    np.testing.assert_allclose(h[0, :4], [0, 0, 0, 1])  # red all in the top bin
    np.testing.assert_allclose(h[0, 4:8], [0.5, 0, 0.5, 0])  # green half 0, half 128
    np.testing.assert_allclose(h[0, 8:], [1, 0, 0, 0])


def test_labelled_folders_in_both_layouts(tmp_path) -> None:
    tile = Image.fromarray(np.full((8, 8, 3), 200, dtype=np.uint8))
    for cls in ("a", "b"):
        (tmp_path / "flat" / cls).mkdir(parents=True)
        tile.save(tmp_path / "flat" / cls / "1.png")
        for split in ("train", "test"):
            (tmp_path / "split" / split / cls).mkdir(parents=True)
            tile.save(tmp_path / "split" / split / cls / "1.png")
    flat = labeled_folder_samples(tmp_path / "flat")
    assert {s.split for s in flat} == {"all"} and {s.label for s in flat} == {"a", "b"}
    split = labeled_folder_samples(tmp_path / "split")
    assert {s.split for s in split} == {"train", "test"}
    (tmp_path / "one" / "a").mkdir(parents=True)
    tile.save(tmp_path / "one" / "a" / "1.png")
    with pytest.raises(ProbeInputError, match="at least two classes"):
        labeled_folder_samples(tmp_path / "one")

"""What an export is judged by: embedding cosine to fp32 PyTorch, kNN agreement, CPU tiles/s."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from vitkd.models import Backbone

Runner = Callable[[torch.Tensor], np.ndarray]

QUANTILES = {"min": 0.0, "p01": 0.01, "p05": 0.05, "median": 0.5}


def torch_runner(backbone: Backbone) -> Runner:
    """uint8 batch -> float32 CLS embeddings (numpy) through the fp32 PyTorch backbone."""
    backbone = backbone.float().eval()

    @torch.inference_mode()
    def run(tiles: torch.Tensor) -> np.ndarray:
        return backbone.forward_tokens(tiles).cls.float().numpy()

    return run


def onnx_runner(session: Any) -> Runner:
    """uint8 batch -> float32 CLS embeddings (numpy) through an onnxruntime session."""
    name = session.get_inputs()[0].name

    def run(tiles: torch.Tensor) -> np.ndarray:
        return np.asarray(session.run(["cls"], {name: tiles.numpy()})[0], dtype=np.float32)

    return run


def embed_all(run: Runner, tiles: torch.Tensor, batch_size: int) -> np.ndarray:
    """Embeddings of every tile, `batch_size` at a time."""
    return np.concatenate([run(batch) for batch in tiles.split(batch_size)])


def cosine_distribution(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    """Per-tile cosine between matching rows, as min / p01 / p05 / median / mean."""
    ref = reference.astype(np.float64)
    got = candidate.astype(np.float64)
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1)
    cos = (ref * got).sum(axis=1) / np.maximum(norms, 1e-30)
    stats = {name: float(np.quantile(cos, q)) for name, q in QUANTILES.items()}
    stats["mean"] = float(cos.mean())
    return stats


def _neighbours(x: np.ndarray, k: int) -> np.ndarray:
    """Indices (N, k) of each row's k most cosine-similar other rows."""
    unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)
    sim = unit @ unit.T
    np.fill_diagonal(sim, -np.inf)
    return np.argsort(-sim, axis=1, kind="stable")[:, :k]


def knn_agreement(
    reference: np.ndarray, candidate: np.ndarray, k: int = 5, classes: int = 8, seed: int = 0
) -> dict[str, float]:
    """Probe agreement without labels, on the same tiles.

    Pseudo-labels are k-means clusters of the reference embeddings; each tile gets the
    majority label of its k nearest other tiles (leave-one-out kNN probe) in each space.
    `knn_label_agreement` is the fraction of tiles whose predicted label is the same;
    `knn_neighbour_overlap` the mean fraction of shared neighbours.
    """
    from sklearn.cluster import KMeans

    n = len(reference)
    k = max(1, min(k, n - 1))
    unit = reference / np.maximum(np.linalg.norm(reference, axis=1, keepdims=True), 1e-30)
    n_classes = max(2, min(classes, n // 4))
    labels = KMeans(n_classes, n_init=4, random_state=seed).fit_predict(unit.astype(np.float64))
    ref_nn, got_nn = _neighbours(reference, k), _neighbours(candidate, k)

    def vote(nn: np.ndarray) -> np.ndarray:
        counts = np.zeros((n, n_classes), dtype=np.int64)
        np.add.at(counts, (np.repeat(np.arange(n), k), labels[nn].ravel()), 1)
        return counts.argmax(axis=1)

    overlap = np.mean([len(set(a) & set(b)) / k for a, b in zip(ref_nn, got_nn, strict=True)])
    return {
        "knn_label_agreement": float((vote(ref_nn) == vote(got_nn)).mean()),
        "knn_neighbour_overlap": float(overlap),
        "knn_k": float(k),
    }


def tiles_per_second(
    run: Runner, tiles: torch.Tensor, batch_size: int, min_seconds: float = 2.0
) -> float:
    """CPU throughput of `run` over `tiles`: one untimed warm-up batch, then whole passes over
    the tiles until `min_seconds` have passed (at least one)."""
    batches = list(tiles.split(batch_size))
    run(batches[0])
    done, start = 0, time.perf_counter()
    while True:
        for batch in batches:
            run(batch)
        done += len(tiles)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return done / elapsed

"""Cosine k-nearest-neighbour probe (k = 20 by default)."""

import numpy as np
import torch
import torch.nn.functional as F

from evaluation.probes.data import ProbeData, balanced_accuracy


def knn_predict(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_query: np.ndarray,
    num_classes: int,
    k: int = 20,
    chunk_size: int = 1024,
) -> np.ndarray:
    """Majority vote among the k most cosine-similar training rows; ties go to the larger summed similarity."""
    k = min(k, len(y_train))
    train = F.normalize(torch.as_tensor(x_train, dtype=torch.float32), dim=1)
    labels = torch.as_tensor(y_train, dtype=torch.int64)
    query = F.normalize(torch.as_tensor(x_query, dtype=torch.float32), dim=1)
    preds = []
    for start in range(0, query.shape[0], chunk_size):
        sim, idx = (query[start : start + chunk_size] @ train.T).topk(k, dim=1)
        preds.append(vote(sim, labels[idx], num_classes))
    return torch.cat(preds).numpy() if preds else np.zeros(0, dtype=np.int64)


def vote(sim: torch.Tensor, neighbour_labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Majority class of each row's k neighbours (similarities and labels, both (n, k)); ties go
    to the larger summed similarity."""
    k = sim.shape[1]
    votes = torch.zeros(sim.shape[0], num_classes)
    votes.scatter_add_(1, neighbour_labels, torch.ones_like(sim))
    # Similarity sums lie in [-k, k], so scaling by 1/(4k) breaks ties without overturning a vote.
    votes.scatter_add_(1, neighbour_labels, sim / (4 * k))
    return votes.argmax(1)


def knn_probe(data: ProbeData, k: int = 20) -> dict[str, object]:
    """Cosine kNN classifier from train, balanced accuracy on the eval split."""
    split, x, y = data.eval_split()
    pred = knn_predict(data.x_train, data.y_train, x, data.num_classes, k=k)
    return {
        "probe": "knn",
        "eval_split": split,
        "balanced_accuracy": balanced_accuracy(y, pred),
        "k": k,
    }

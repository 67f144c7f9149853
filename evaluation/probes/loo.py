"""Leave-one-out kNN and logistic probes, for labelled sets too small to split."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import LeaveOneOut, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from evaluation.probes.data import balanced_accuracy
from evaluation.probes.knn import vote


def loo_k(y: np.ndarray, k: int) -> int:
    """k capped at the smallest class size minus one: with 3 tiles per class, k = 20 would let
    the other classes outvote the 2 possible same-class neighbours of every sample."""
    smallest = int(np.unique(np.asarray(y), return_counts=True)[1].min())
    return max(1, min(k, len(y) - 1, smallest - 1))


def loo_knn(x: np.ndarray, y: np.ndarray, k: int = 20) -> float:
    """Balanced accuracy of cosine kNN where each sample is classified by all the others
    (k capped by `loo_k`; the vote of `knn_predict`)."""
    k = loo_k(y, k)
    z = F.normalize(torch.as_tensor(x, dtype=torch.float32), dim=1)
    sim = z @ z.T
    sim.fill_diagonal_(float("-inf"))
    top, idx = sim.topk(k, dim=1)
    labels = torch.as_tensor(y, dtype=torch.int64)
    pred = vote(top, labels[idx], int(labels.max()) + 1)
    return balanced_accuracy(np.asarray(y), pred.numpy())


def loo_logistic(x: np.ndarray, y: np.ndarray, c: float = 1.0, seed: int = 0) -> float:
    """Balanced accuracy of standardised L2 logistic regression, leave-one-out."""
    model = make_pipeline(
        StandardScaler(), LogisticRegression(C=c, max_iter=1000, random_state=seed)
    )
    pred = cross_val_predict(model, x, y, cv=LeaveOneOut())
    return balanced_accuracy(np.asarray(y), pred)

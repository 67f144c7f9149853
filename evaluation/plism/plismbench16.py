"""PLISM pair metrics in plismbench's numpy float16 arithmetic, bit for bit (tie handling included).

Reference: owkin/plism-benchmark at commit 172bd8d3bb3d7ad995f05655268fd42e138f2f2e,
``plismbench/engine/evaluate.py`` (``compute_metrics_ab`` and ``core_compute_metrics``, numpy
``device="cpu"`` path), the arithmetic behind the published leaderboard
(https://github.com/owkin/plism-benchmark/blob/172bd8d3bb3d7ad995f05655268fd42e138f2f2e/plismbench/engine/evaluate.py).
Its ``metrics/retrieval.py`` with ``use_mixed_precision=True`` does the same top-k arithmetic.

What plismbench does, and how each step is reproduced:

- features are read as float32 and cast to float16: the same casts here;
- norms are ``np.linalg.norm(float16)``: numpy itself is called;
- dot products are numpy's float16 ``matmul``, which has no BLAS path: it sums the exact products in
  float32, in order, and rounds the sum to float16 once. That loop is written here as a sequence of
  rank-1 updates in float32 (a product of two float16 values is exact in float32, so fused or not
  the rounding is the same); on a GPU this is ~0.5 s per 8,139-tile pair, on a CPU as slow as
  plismbench's own numpy path;
- ``dot / (norm * norm.T)`` are float16 ufuncs, i.e. each op in float32 rounded to float16: the same
  here (checked bit for bit against numpy in the tests);
- the cosine similarity is ``np.diag(cos_ab).mean()`` of float16 values, itself a float16: numpy's
  mean is called on the same values;
- the ranking is ``np.argpartition(-cos, range(1, kmax + 1), axis=1)[:, 1:kmax + 1]``: numpy is
  called on the same float16 rows (rows are independent, so row chunks give the same indices).
  Dropping column 0 assumes the tile itself is the nearest; in float16 a tile's cosine with itself
  can round below its partner's, and then the partner is dropped. That is plismbench's behaviour and
  it is kept here; :func:`evaluation.plism.pairs.pair_metrics` masks self instead.
"""

from collections.abc import Sequence

import numpy as np
import torch

from evaluation.plism.pairs import DEFAULT_TOP_K


def _as_float16(x: np.ndarray | torch.Tensor, name: str) -> np.ndarray:
    """plismbench's ``load_features`` (float32) then ``.astype(np.float16)``."""
    arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be (n_tiles, dim), got shape {arr.shape}")
    return arr.astype(np.float32).astype(np.float16)


def float16_matmul(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """numpy's float16 ``x @ y.T``: exact products summed in float32 in index order, then rounded.

    Args:
        x: (m, d) float16 values (any float dtype holding them).
        y: (p, d) float16 values, same device.

    Returns:
        (m, p) float16.
    """
    xf, yt = x.float(), y.float().T.contiguous()
    acc = torch.zeros(xf.shape[0], yt.shape[1], dtype=torch.float32, device=xf.device)
    for k in range(xf.shape[1]):
        acc.addcmul_(xf[:, k : k + 1], yt[k : k + 1])
    return acc.half()


def _cosine_rows(
    rows: torch.Tensor, everything: torch.Tensor, norm_rows: torch.Tensor, norm_all: torch.Tensor
) -> np.ndarray:
    """float16 ``dot / (norm * norm.T)`` for a block of rows, each op rounded as numpy does."""
    dot = float16_matmul(rows, everything).float()
    denom = (norm_rows.float()[:, None] * norm_all.float()[None, :]).half().float()
    return (dot / denom).half().cpu().numpy()


def plismbench_pair_metrics(
    features_a: np.ndarray | torch.Tensor,
    features_b: np.ndarray | torch.Tensor,
    top_k: Sequence[int] = DEFAULT_TOP_K,
    chunk_size: int = 2048,
    device: str | torch.device | None = None,
) -> dict[str, float]:
    """Cosine similarity and top-k accuracies exactly as plismbench computes them in float16.

    Args:
        features_a: (n, d) features of slide A (any float dtype; cast float32 -> float16).
        features_b: (n, d) features of slide B, same tile order.
        top_k: values of k.
        chunk_size: rows of the (2n, 2n) cosine matrix held at once (memory ~ chunk_size * 2n).
        device: where the float16 dot products run (default CPU); ranking is numpy on the host.

    Returns:
        ``{"cosine_similarity": ..., "top_1_accuracy": ...}``, the floats plismbench returns.
    """
    a, b = _as_float16(features_a, "features_a"), _as_float16(features_b, "features_b")
    if a.shape != b.shape:
        raise ValueError(
            f"the two slides must have the same (n_tiles, dim), got {a.shape} and {b.shape}; "
            "align their tiles by coordinates first"
        )
    n = a.shape[0]
    ks = [int(k) for k in top_k]
    if n < 1 or any(k < 1 or k > 2 * n - 1 for k in ks):
        raise ValueError(f"need n >= 1 tiles and every k in [1, 2n - 1]; got n={n}, top_k={ks}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    kmax = max(ks)
    ab = np.concatenate([a, b], axis=0)
    norms = np.linalg.norm(ab, axis=1, keepdims=True)[:, 0]  # numpy's own float16 norm
    dev = torch.device(device) if device is not None else torch.device("cpu")
    ab_t = torch.from_numpy(ab).to(dev)
    norms_t = torch.from_numpy(norms).to(dev)
    partner = np.concatenate([np.arange(n, 2 * n), np.arange(n)])
    diag = np.empty(n, dtype=np.float16)
    hits = {k: np.zeros(2 * n, dtype=bool) for k in ks}
    for start in range(0, 2 * n, chunk_size):
        stop = min(start + chunk_size, 2 * n)
        cos = _cosine_rows(ab_t[start:stop], ab_t, norms_t[start:stop], norms_t)
        rows = np.arange(start, stop)
        in_a = rows < n
        diag[rows[in_a]] = cos[in_a, partner[rows[in_a]]]
        nearest = np.argpartition(-cos, range(1, kmax + 1), axis=1)[:, 1 : kmax + 1]
        for k in ks:
            hits[k][start:stop] = np.any(nearest[:, :k] == partner[start:stop, None], axis=1)
    out = {"cosine_similarity": float(diag.mean())}  # float16 mean, as np.diag(...).mean()
    for k in ks:
        acc_a = float(np.sum(hits[k][:n]) / n)
        acc_b = float(np.sum(hits[k][n:]) / n)
        out[f"top_{k}_accuracy"] = sum([acc_a, acc_b]) / 2
    return out

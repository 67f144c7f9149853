"""PLISM per-pair robustness metrics: matched-tile cosine similarity and top-k retrieval accuracy."""

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

DEFAULT_TOP_K = (1, 3, 5, 10)


def _as_tensor(x: np.ndarray | torch.Tensor, name: str) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))
    if t.ndim != 2:
        raise ValueError(f"{name} must be (n_tiles, dim), got shape {tuple(t.shape)}")
    return t.detach()


def _block_ranks(
    za: torch.Tensor, zb: torch.Tensor, partner: torch.Tensor, chunk_size: int
) -> torch.Tensor:
    """Rank of each tile's partner among its 2n - 1 neighbours (0 = nearest), for all 2n tiles.

    The (2n, 2n) cosine matrix S is never materialised: it is visited in (chunk x chunk) blocks
    of the upper triangle, each block used twice (rows and, transposed, columns) since S is
    symmetric. Self (diagonal of AA/BB blocks) and partner (diagonal of AB blocks) entries are
    masked to -inf so that rank = #{j != self, partner : S_ij > S_i,partner}.
    """
    n = za.shape[0]
    starts = list(range(0, n, chunk_size))
    # Blocks 0..C-1 are slide A chunks, C..2C-1 slide B chunks over the same tile ranges, so
    # self and partner entries always sit on block diagonals.
    blocks = [za[s : s + chunk_size] for s in starts] + [zb[s : s + chunk_size] for s in starts]
    offsets = starts + [n + s for s in starts]
    n_chunks = len(starts)
    ranks = torch.zeros(2 * n, dtype=torch.int64, device=za.device)
    for i, bi in enumerate(blocks):
        pi = partner[offsets[i] : offsets[i] + bi.shape[0]]
        for j in range(i, 2 * n_chunks):
            bj = blocks[j]
            sim = bi @ bj.T
            if j == i or j == i + n_chunks:
                sim.diagonal().fill_(float("-inf"))
            ranks[offsets[i] : offsets[i] + bi.shape[0]] += (sim > pi[:, None]).sum(1)
            if j != i:
                pj = partner[offsets[j] : offsets[j] + bj.shape[0]]
                ranks[offsets[j] : offsets[j] + bj.shape[0]] += (sim > pj[None, :]).sum(0)
    return ranks


def pair_metrics(
    features_a: np.ndarray | torch.Tensor,
    features_b: np.ndarray | torch.Tensor,
    top_k: Sequence[int] = DEFAULT_TOP_K,
    dtype: torch.dtype = torch.float32,
    chunk_size: int = 2048,
    device: str | torch.device | None = None,
) -> dict[str, float]:
    """Robustness metrics between two slides whose row i is the same tile location.

    Definitions follow owkin/plism-benchmark (``plismbench/engine/evaluate.py``,
    ``core_compute_metrics``, checked against its source):

    - ``cosine_similarity`` = mean_i cos(a_i, b_i).
    - ``top_{k}_accuracy``: stack both slides (2n, d); for each of the 2n tiles take its k nearest
      neighbours by cosine among the other 2n - 1 tiles; a hit if the same-location tile of the
      other slide is among them; the mean over slide A's tiles and over slide B's tiles are
      averaged (both have n tiles, so this is the mean over all 2n).

    Differences from plismbench, on purpose: plismbench excludes self by dropping the first
    column of ``argpartition(-cos, range(1, kmax + 1))``, which drops a tied partner instead of
    self when two tiles have identical features; here self is masked explicitly, and ties with
    the partner count in its favour (rank = number of strictly closer tiles). ``dtype=torch.float16``
    rounds the features to float16 as plismbench does, but normalises in float32 and masks self,
    so it is a fast float16 mode, not plismbench's numbers; those come from
    :func:`evaluation.plism.plismbench16.plismbench_pair_metrics`.

    Args:
        features_a: (n, d) features of slide A.
        features_b: (n, d) features of slide B, same tile order.
        top_k: values of k.
        dtype: compute dtype, ``torch.float32`` or ``torch.float16``.
        chunk_size: tiles per block; memory is O(chunk_size^2) besides the inputs.
        device: where to compute (default: the inputs' device).

    Returns:
        ``{"cosine_similarity": ..., "top_1_accuracy": ..., ...}`` as Python floats.
    """
    a, b = _as_tensor(features_a, "features_a"), _as_tensor(features_b, "features_b")
    if a.shape != b.shape:
        raise ValueError(
            f"the two slides must have the same (n_tiles, dim), got {tuple(a.shape)} and "
            f"{tuple(b.shape)}; align their tiles by coordinates first"
        )
    n = a.shape[0]
    if n < 1:
        raise ValueError("the slides have no tiles")
    ks = [int(k) for k in top_k]
    if any(k < 1 or k > 2 * n - 1 for k in ks):
        raise ValueError(f"every k in top_k must be in [1, 2n - 1] = [1, {2 * n - 1}], got {ks}")
    if dtype not in (torch.float32, torch.float16, torch.bfloat16, torch.float64):
        raise ValueError(f"dtype must be a floating torch dtype, got {dtype}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    dev = torch.device(device) if device is not None else a.device
    # Rounding to `dtype` first reproduces plismbench's float16 cast of the raw features.
    a = a.to(dev).to(dtype)
    b = b.to(dev).to(dtype)
    za = F.normalize(a.float(), dim=1).to(dtype)
    zb = F.normalize(b.float(), dim=1).to(dtype)
    # The partner similarity comes from the same dtype as the blocks, so comparisons are consistent.
    cos = (za.float() * zb.float()).sum(1)
    partner = torch.cat([cos, cos]).to(dtype)
    ranks = _block_ranks(za, zb, partner, chunk_size)
    out = {"cosine_similarity": float(cos.double().mean())}
    for k in ks:
        out[f"top_{k}_accuracy"] = float((ranks < k).double().mean())
    return out

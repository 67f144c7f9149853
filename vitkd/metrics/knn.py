"""Agreement of the cosine k-nearest-neighbour sets of the same samples in two spaces."""

import torch
import torch.nn.functional as F

from vitkd.metrics._arrays import ArrayLike, paired


def cosine_knn(x: torch.Tensor, k: int, chunk_size: int = 2048) -> torch.Tensor:
    """Indices (n, k) of each row's k nearest rows by cosine similarity, excluding the row itself."""
    z = F.normalize(x.to(torch.float32), dim=1)
    out = []
    for start in range(0, z.shape[0], chunk_size):
        sim = z[start : start + chunk_size] @ z.T
        rows = torch.arange(sim.shape[0])
        sim[rows, rows + start] = float("-inf")
        out.append(sim.topk(k, dim=1).indices)
    return torch.cat(out)


def knn_agreement(x: ArrayLike, y: ArrayLike, k: int = 10, centred: bool = False) -> float:
    """Mean fraction of shared neighbours: ``mean_i |N_k^x(i) ∩ N_k^y(i)| / k``.

    Neighbours are by cosine similarity, self excluded, computed in chunks so memory stays
    O(chunk * n). With `centred`, each space's mean over the samples is subtracted first: a
    direction shared by every sample (a random ViT's CLS is mostly one) then no longer makes
    all cosines near 1 and the neighbour sets reflect how the samples differ.

    Args:
        x: (n, d1) embeddings (e.g. student).
        y: (n, d2) embeddings of the same samples (e.g. teacher).
        k: neighbourhood size; must be < n.
        centred: subtract each space's sample mean before the cosine.

    Returns:
        Agreement in [0, 1]; about k / (n - 1) for unrelated spaces.
    """
    xt, yt = paired(x, y)
    if centred:
        xt, yt = xt - xt.mean(0), yt - yt.mean(0)
    n = xt.shape[0]
    if not 1 <= k < n:
        raise ValueError(f"k must be in [1, n - 1] = [1, {n - 1}], got {k}")
    nx, ny = cosine_knn(xt, k), cosine_knn(yt, k)
    # Membership test via a scatter into a boolean (chunk, n) mask keeps it vectorised.
    shared = 0
    for start in range(0, n, 2048):
        a, b = nx[start : start + 2048], ny[start : start + 2048]
        mask = torch.zeros(a.shape[0], n, dtype=torch.bool)
        mask.scatter_(1, a, True)
        shared += int(mask.gather(1, b).sum())
    return shared / (n * k)

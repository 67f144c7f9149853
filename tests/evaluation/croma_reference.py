"""croma's RI / MaRI / CRoMa restated operation by operation, as a test oracle that needs no croma.

Source: package ``croma`` 1.0.1 (Grisi et al. 2026, github.com/clemsgrs/croma), modules
croma/metrics/{base,neighbors,mari,croma,tail}.py. Written anew from reading them: sklearn
cosine neighbours on rows divided by (norm + 1e-12), the query and its group (slide) dropped
from the ranked list, typed masks over the first k, weights 1 (RI) or exp(-d / tau) (MaRI),
tau the median typed distance, pooled ratio of summed weights; CRoMa from the first m SO and
m OS entries of the full ranked list. The full list is fetched at once instead of croma's
growing fetch, which converges to it.
"""

import numpy as np
from sklearn.neighbors import NearestNeighbors


def ranked_other_group(
    x: np.ndarray, group: np.ndarray
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per query, all other-group rows and their cosine distances, nearest first."""
    f = x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)
    nn = NearestNeighbors(n_neighbors=len(f), metric="cosine").fit(f)
    dist, idx = nn.kneighbors(f)
    rows, dists = [], []
    for i in range(len(f)):
        keep = [p for p, j in enumerate(idx[i]) if j != i and group[j] != group[i]]
        rows.append(idx[i][keep])
        dists.append(dist[i][keep])
    return rows, dists


def ref_ri_mari(x, label, centre, group, k: int, tau: float | None):
    """Pooled RI (tau=None gives weights 1 only when `weighted` is False) and MaRI at k."""
    rows, dists = ranked_other_group(x, np.asarray(group))
    label, centre = np.asarray(label), np.asarray(centre)
    typed_d, so_mask, os_mask, d_k = [], [], [], []
    for i in range(len(rows)):
        r, d = rows[i][:k], dists[i][:k]
        so = (label[r] == label[i]) & (centre[r] != centre[i])
        os_ = (label[r] != label[i]) & (centre[r] == centre[i])
        so_mask.append(so)
        os_mask.append(os_)
        d_k.append(d)
        typed_d.append(d[so | os_])
    if tau is None:
        tau = float(np.median(np.concatenate(typed_d)))
    so_w = np.array([np.exp(-d[s] / tau).sum() for d, s in zip(d_k, so_mask, strict=True)])
    os_w = np.array([np.exp(-d[o] / tau).sum() for d, o in zip(d_k, os_mask, strict=True)])
    so_n = np.array([s.sum() for s in so_mask])
    os_n = np.array([o.sum() for o in os_mask])
    informative = (so_n + os_n) > 0
    return {
        "ri": so_n.sum() / (so_n.sum() + os_n.sum()),
        "mari": so_w.sum() / (so_w.sum() + os_w.sum()),
        "tau": tau,
        "support": informative.mean(),
        "mari_per_query": np.where(informative, so_w / np.maximum(so_w + os_w, 1e-300), np.nan),
    }


def ref_croma(x, label, centre, group, m: int = 5, alpha: float = 0.10):
    """Per-sample CRoMa, its median, q_alpha, LTM_alpha and F(0)."""
    rows, dists = ranked_other_group(x, np.asarray(group))
    label, centre = np.asarray(label), np.asarray(centre)
    values = []
    for i in range(len(rows)):
        so_d, os_d = [], []
        for j, d in zip(rows[i], dists[i], strict=True):
            if label[j] == label[i] and centre[j] != centre[i] and len(so_d) < m:
                so_d.append(d)
            elif label[j] != label[i] and centre[j] == centre[i] and len(os_d) < m:
                os_d.append(d)
            if len(so_d) == m and len(os_d) == m:
                break
        d_so, d_os = np.mean(so_d), np.mean(os_d)
        values.append((d_os - d_so) / (d_os + d_so))
    v = np.array(values)
    q = np.percentile(v, alpha * 100)
    return {
        "values": v,
        "croma": np.median(v),
        "q": q,
        "ltm": v[v <= q].mean(),
        "f0": np.mean(v <= 0),
    }

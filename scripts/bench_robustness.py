"""Time RI + MaRI + CRoMa (one chunked torch pass) against sklearn NearestNeighbors references, as PathoROB and croma run them."""

import argparse
import platform
import time

import numpy as np
import torch
from sklearn.neighbors import NearestNeighbors

from evaluation.robustness_index import robustness_metrics

EPILOG = """The reference is what the two published tools do, vectorised in numpy where they loop
in Python (so it is faster than they are): RI as PathoROB (KNeighborsClassifier-style euclidean
kneighbors on L2-normalised rows, fetching k + the largest slide, dropping the query's slide,
RI = sum SO / sum (SO + OS)); CRoMa as croma (NearestNeighbors(metric="cosine"), fetch
start_k + buffer, refetch unresolved rows with k doubled, first m SO / OS distances per row).
Both sides skip the bootstrap. With --ref-queries the reference runs for a random subset of
query rows (against all rows) and its time is scaled by n / subset, since its cost is linear in
the queries. The numbers must agree on the compared rows (RI, CRoMa median / LTM10 / F(0)); the
last line is ratio=<reference time / vitkd time>."""


def cohort(n: int, dim: int, classes: int, centres: int, slides_per_cell: int, seed: int) -> dict:
    """Synthetic embeddings: class + centre + slide offsets + noise, each slide one (class, centre)."""
    rng = np.random.default_rng(seed)
    cells = classes * centres * slides_per_cell
    slide = np.sort(rng.integers(0, cells, size=n))
    bio, cen = slide // (centres * slides_per_cell), (slide // slides_per_cell) % centres
    class_dirs = rng.normal(size=(classes, dim)).astype(np.float32)
    centre_dirs = rng.normal(size=(centres, dim)).astype(np.float32)
    offsets = 0.5 * rng.normal(size=(cells, dim)).astype(np.float32)
    x = class_dirs[bio] + centre_dirs[cen] + offsets[slide]
    x += 2.5 * rng.standard_normal(size=(n, dim), dtype=np.float32)
    return {"x": x, "biology": bio, "centre": cen, "slide": slide}


def reference_setup(x: np.ndarray) -> tuple[np.ndarray, NearestNeighbors, NearestNeighbors]:
    """L2-normalised rows and the two fitted sklearn indexes (euclidean as PathoROB, cosine as croma)."""
    z = x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)
    return z, NearestNeighbors().fit(z), NearestNeighbors(metric="cosine").fit(z)


def reference_ri(
    z: np.ndarray,
    nn: NearestNeighbors,
    bio: np.ndarray,
    cen: np.ndarray,
    slide: np.ndarray,
    k: int,
    queries: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """PathoROB's SO / OS counts at k for the query rows: kneighbors of k + largest slide, own slide dropped."""
    margin = int(np.bincount(slide).max())
    idx = nn.kneighbors(z[queries], n_neighbors=k + margin, return_distance=False)
    keep = slide[idx] != slide[queries, None]
    # Stable sort puts each row's kept neighbours first, in their distance order.
    order = np.argsort(~keep, axis=1, kind="stable")[:, :k]
    nb = np.take_along_axis(idx, order, axis=1)
    same_bio, same_cen = bio[nb] == bio[queries, None], cen[nb] == cen[queries, None]
    return (same_bio & ~same_cen).sum(1), (~same_bio & same_cen).sum(1)


def reference_croma(
    z: np.ndarray,
    nn: NearestNeighbors,
    bio: np.ndarray,
    cen: np.ndarray,
    slide: np.ndarray,
    m: int,
    queries: np.ndarray,
    start_k: int = 200,
) -> np.ndarray:
    """croma's per-sample CRoMa of the query rows: growing cosine fetches until each has m SO and m OS."""
    n = len(z)
    values = np.full(n, np.nan)
    todo = np.asarray(queries)
    k = start_k
    while todo.size:
        fetch = min(n, k + max(64, int(np.bincount(slide).max())) + 1)
        dist, idx = nn.kneighbors(z[todo], n_neighbors=fetch)
        q = todo[:, None]
        other = slide[idx] != slide[q]
        so = other & (bio[idx] == bio[q]) & (cen[idx] != cen[q])
        os_ = other & (bio[idx] != bio[q]) & (cen[idx] == cen[q])
        done = (so.sum(1) >= m) & (os_.sum(1) >= m)
        for mask, name in ((so, "so"), (os_, "os")):
            # Distances of the first m typed entries per row (rows with fewer are redone).
            first = np.argsort(~mask, axis=1, kind="stable")[:, :m]
            d = np.take_along_axis(dist, first, axis=1).mean(1)
            if name == "so":
                d_so = d
            else:
                d_os = d
        values[todo[done]] = ((d_os - d_so) / (d_os + d_so))[done]
        todo = todo[~done]
        if fetch >= n:
            break
        k *= 2
    return values[queries]


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100_000, help="embeddings (default 100,000)")
    parser.add_argument("--dim", type=int, default=768, help="embedding width (default 768)")
    parser.add_argument(
        "--k", type=int, default=61, help="RI neighbours (default 61, PathoROB tcga)"
    )
    parser.add_argument("--m", type=int, default=5, help="CRoMa typed neighbours (default 5)")
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--centres", type=int, default=4)
    parser.add_argument("--slides-per-cell", type=int, default=25)
    parser.add_argument("--dtype", choices=["float32", "float16"], default="float32")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--ref-queries",
        type=int,
        default=0,
        help="time the reference on this many random query rows (against all n rows) and scale "
        "its time by n / ref-queries; numbers are compared on those rows (default 0: all)",
    )
    parser.add_argument("--quick", action="store_true", help="5,000 x 64")
    args = parser.parse_args()
    if args.quick:
        args.n, args.dim, args.slides_per_cell = 5000, 64, 5
    d = cohort(args.n, args.dim, args.classes, args.centres, args.slides_per_cell, args.seed)
    print(
        f"n={args.n} dim={args.dim} k={args.k} m={args.m} torch_threads={torch.get_num_threads()} "
        f"dtype={args.dtype} device={args.device} {platform.processor() or platform.machine()}"
    )

    t0 = time.perf_counter()
    ours = robustness_metrics(
        d["x"],
        d["biology"],
        d["centre"],
        d["slide"],
        k=args.k,
        m=args.m,
        n_bootstrap=0,
        dtype=getattr(torch, args.dtype),
        device=args.device,
    )
    t_ours = time.perf_counter() - t0
    print(f"vitkd      RI+MaRI+CRoMa: {t_ours:8.2f} s")

    n_q = args.ref_queries or args.n
    queries = np.sort(np.random.default_rng(1).choice(args.n, size=n_q, replace=False))
    scale = args.n / n_q
    t0 = time.perf_counter()
    z, nn_euclid, nn_cosine = reference_setup(d["x"])
    t_setup = time.perf_counter() - t0  # once per dataset: not scaled
    t0 = time.perf_counter()
    so_ref, os_ref = reference_ri(
        z, nn_euclid, d["biology"], d["centre"], d["slide"], args.k, queries
    )
    t_ri = (time.perf_counter() - t0) * scale
    t0 = time.perf_counter()
    croma_ref = reference_croma(
        z, nn_cosine, d["biology"], d["centre"], d["slide"], args.m, queries
    )
    t_croma = (time.perf_counter() - t0) * scale
    t_ref = t_setup + t_ri + t_croma
    timed = "all" if n_q == args.n else f"queries timed on {n_q} of {args.n}, scaled x{scale:g}"
    print(
        f"reference  setup {t_setup:.2f} s + RI {t_ri:.2f} s + CRoMa {t_croma:.2f} s = "
        f"{t_ref:8.2f} s ({timed})"
    )

    per_q = ours["ri"]["per_query"]
    so, os_ = per_q["so"][queries], per_q["os"][queries]
    ri, ri_ref = so.sum() / (so + os_).sum(), so_ref.sum() / (so_ref + os_ref).sum()
    per = ours["croma"]["per_sample"][queries]
    q = np.percentile(croma_ref, 10)
    ref_stats = {
        "median": np.median(croma_ref),
        "ltm10": croma_ref[croma_ref <= q].mean(),
        "f0": np.mean(croma_ref <= 0),
    }
    q_ours = np.percentile(per, 10)
    our_stats = {
        "median": np.median(per),
        "ltm10": per[per <= q_ours].mean(),
        "f0": np.mean(per <= 0),
    }
    print(
        f"RI (compared rows)  vitkd {ri:.6f}  reference {ri_ref:.6f}  |diff| {abs(ri - ri_ref):.2e}"
    )
    print(f"SO/OS counts differ on {int(((so != so_ref) | (os_ != os_ref)).sum())} of {n_q} rows")
    for key, ref_value in ref_stats.items():
        print(
            f"CRoMa {key:6s} vitkd {our_stats[key]:.6f}  reference {ref_value:.6f}  "
            f"|diff| {abs(our_stats[key] - ref_value):.2e}"
        )
    print(
        f"CRoMa per-sample max |diff| {np.nanmax(np.abs(per - croma_ref)):.2e}; all rows: "
        f"RI {ours['ri']['ri']:.6f}, CRoMa {ours['croma']['croma']:.6f}, "
        f"MaRI {ours['mari']['mari']:.6f} (tau {ours['mari']['tau']:.4f})"
    )
    tol = 1e-3 if args.dtype == "float16" else 1e-4
    agree = abs(ri - ri_ref) < tol and all(
        abs(our_stats[c] - v) < tol for c, v in ref_stats.items()
    )
    print(f"agree={agree} (tolerance {tol:g})")
    print(f"ratio={t_ref / t_ours:.2f}")
    if not agree:
        raise SystemExit(1)


if __name__ == "__main__":
    main()

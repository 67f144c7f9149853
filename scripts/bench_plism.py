"""Time PLISM pair metrics (ours, blocked and vectorised) against a plain plismbench-style reference."""

import argparse
import time

import numpy as np
import torch

from evaluation.plism import pair_metrics


def reference_pair(a: np.ndarray, b: np.ndarray, ks: list[int]) -> list[float]:
    """plismbench's core_compute_metrics written out in plain numpy (float32)."""
    n = a.shape[0]
    ab = np.concatenate([a, b], axis=0)
    dot = ab @ ab.T
    norm = np.linalg.norm(ab, axis=1, keepdims=True)
    cos = dot / (norm * norm.T)
    out = [float(np.diag(cos[:n, n:]).mean())]
    kmax = max(ks)
    top = np.argpartition(-cos, range(1, kmax + 1), axis=1)[:, 1 : kmax + 1]
    for k in ks:
        accs = []
        for i, idx in enumerate([top[:n, :k], top[n:, :k]]):
            other = np.arange(n, 2 * n) if i == 0 else np.arange(0, n)
            accs.append(np.sum(np.any(idx == other[:, None], axis=1)) / n)
        out.append(sum(accs) / 2)
    return out


EPILOG = """Ours runs on --pairs pairs; the reference (full 2n x 2n cosine matrix + argpartition, as
plismbench's core_compute_metrics, in numpy float32 because numpy has no fast float16 matmul) on
--ref-pairs pairs. Both are reported per pair and extrapolated linearly to 100 pairs; the last
line is ratio=<reference time / ours time>."""


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=100, help="pairs timed for ours (default 100)")
    parser.add_argument(
        "--ref-pairs", type=int, default=3, help="pairs timed for the reference (default 3)"
    )
    parser.add_argument("--tiles", type=int, default=8139, help="tiles per slide (default 8139)")
    parser.add_argument("--dim", type=int, default=768, help="feature width (default 768)")
    parser.add_argument("--chunk-size", type=int, default=2048)
    parser.add_argument("--dtype", choices=["float32", "float16"], default="float32")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--quick", action="store_true", help="2,000 tiles, 10 pairs, 2 reference pairs"
    )
    args = parser.parse_args()
    if args.quick:
        args.tiles, args.pairs, args.ref_pairs = 2000, 10, 2
    ks = [1, 3, 5, 10]
    rng = np.random.default_rng(0)
    # A few "slides" (shared signal + slide-specific shift/noise) give realistic, non-trivial ranks.
    base = rng.normal(size=(args.tiles, args.dim)).astype(np.float32)
    n_slides = 15
    slides = [
        base + rng.normal(scale=0.5 + 0.1 * s, size=base.shape).astype(np.float32)
        for s in range(n_slides)
    ]
    pairs = [(i, j) for i in range(n_slides) for j in range(i + 1, n_slides)]
    pairs = (pairs * (args.pairs // len(pairs) + 1))[: args.pairs]
    dtype = getattr(torch, args.dtype)
    dev = torch.device(args.device)
    tensors = [torch.from_numpy(s).to(dev) for s in slides]
    print(
        f"tiles={args.tiles} dim={args.dim} dtype={args.dtype} device={dev} threads={torch.get_num_threads()}"
    )

    pair_metrics(tensors[0][:256], tensors[1][:256], ks, dtype=dtype, device=dev)  # warm-up
    ours_vals = []
    t0 = time.perf_counter()
    for i, j in pairs:
        ours_vals.append(
            pair_metrics(
                tensors[i], tensors[j], ks, dtype=dtype, chunk_size=args.chunk_size, device=dev
            )
        )
    if dev.type == "cuda":
        torch.cuda.synchronize()
    ours = (time.perf_counter() - t0) / len(pairs)
    print(
        f"ours: {len(pairs)} pairs measured, {ours:.3f} s/pair -> {100 * ours:.1f} s for 100 pairs"
    )

    t0 = time.perf_counter()
    max_diff = 0.0
    for p in range(args.ref_pairs):
        i, j = pairs[p]
        ref = reference_pair(slides[i], slides[j], ks)
        mine = ours_vals[p]
        got = [mine["cosine_similarity"]] + [mine[f"top_{k}_accuracy"] for k in ks]
        max_diff = max(max_diff, max(abs(x - y) for x, y in zip(ref, got, strict=True)))
    reference = (time.perf_counter() - t0) / max(args.ref_pairs, 1)
    print(
        f"reference (numpy float32, full matrix + argpartition): {args.ref_pairs} pairs measured, "
        f"{reference:.3f} s/pair -> {100 * reference:.1f} s for 100 pairs (extrapolated)"
    )
    print(f"max |ours - reference| over measured pairs and metrics: {max_diff:.2e}")
    print(f"ratio={reference / ours:.2f}")


if __name__ == "__main__":
    main()

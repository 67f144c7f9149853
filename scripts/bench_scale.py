"""Benchmark data set-up at scale: peak RSS and time per rank against the number of tiles.

Writes synthetic coords files (metadata only: no slide pixels) for `--slides` slides and each
total in `--tiles` (10^6, 10^7, 10^8 by default), tile counts per slide drawn log-normally, in
the format `python -m slides tile` writes, plus a CSV naming the (absent) slide files. Then, for
each total in a fresh subprocess (so peak RSS is that size's alone), one rank:
- sets up `DistillDataModule` with `data.source.coords` (reads every file's tile count, checks
  its attributes, builds the O(slides) index, selects the hold-out);
- selects the hold-out again, alone;
- draws the first `--draws` indices of the sampler's first epoch (full epoch estimated from it);
- maps the first 10^4 draws to their slide and reads those slides' coords (the bounded cache).
Peak RSS is the process's maximum resident set (`ru_maxrss`), imports included. The last line is
`ratio=<peak RSS at the largest total / peak RSS at the smallest>`.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SLIDE_SIDE = 100_000  # level-0 px of the synthetic slides: room for any tile count below
TILE_LEVEL0 = 448  # 224 px at 0.5 um/px on a 0.25 um/px slide
LOCATE_DRAWS = 10_000


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def tile_counts(n_slides: int, total: int, seed: int = 0) -> np.ndarray:
    """Log-normal tiles per slide (TCGA-like spread), summing exactly to `total`."""
    weights = np.random.default_rng(seed).lognormal(0.0, 0.8, n_slides)
    counts = np.floor(weights / weights.sum() * total).astype(np.int64)
    counts[: total - counts.sum()] += 1
    return counts


def write_dataset(folder: Path, n_slides: int, total: int, dtype: str) -> tuple[Path, Path]:
    """(CSV of slide paths, coords folder) for `total` tiles over `n_slides`; reused if present."""
    import h5py

    import slides
    from slides.grid import TileGrid

    coords_dir, csv_path = folder / "coords", folder / "slides.csv"
    done = folder / ".complete"
    if done.is_file():
        return csv_path, coords_dir
    coords_dir.mkdir(parents=True, exist_ok=True)
    per_row = SLIDE_SIDE // TILE_LEVEL0
    start = time.perf_counter()
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path"])
        for i, count in enumerate(tile_counts(n_slides, total)):
            name = f"slide_{i:05d}"
            writer.writerow([str(folder / "slides" / f"{name}.svs")])
            k = np.arange(count, dtype=np.int64)
            coords = np.stack([k % per_row, k // per_row], axis=1) * TILE_LEVEL0
            grid = TileGrid(coords[:0], 224, 0.5, 0, TILE_LEVEL0, 448, 0, name, SLIDE_SIDE,
                            SLIDE_SIDE, 0.25, 40.0)  # fmt: skip
            with h5py.File(coords_dir / f"{name}.h5", "w") as h5:
                data = h5.create_dataset("coords", data=coords.astype(dtype))
                for key, value in slides.coords_attrs(grid).items():
                    data.attrs[key] = value
    done.touch()
    size_mb = sum(p.stat().st_size for p in coords_dir.iterdir()) / 2**20
    print(
        f"wrote {n_slides} coords files, {total:.0e} tiles ({size_mb:.0f} MiB) in "
        f"{time.perf_counter() - start:.0f} s",
        file=sys.stderr,
    )
    return csv_path, coords_dir


def measure(csv_path: Path, coords_dir: Path, draws: int) -> dict[str, float]:
    """One rank's set-up, hold-out, sampler and locate costs (run in a fresh process)."""
    from vitkd.data.datamodule import DistillDataModule, TileSource
    from vitkd.data.holdout import holdout_indices
    from vitkd.data.sampler import DrawSampler

    out: dict[str, float] = {"import_rss_mb": _peak_mb()}
    source = TileSource(slides=[str(csv_path)], coords=str(coords_dir), tile_size=224)
    dm = DistillDataModule(source=source, num_workers=0)
    start = time.perf_counter()
    dm.setup()
    out["setup_s"] = time.perf_counter() - start
    out["setup_rss_mb"] = _peak_mb()
    n_train = len(dm.train_tiles)
    out.update(tiles=len(dm.tile_index), slides=len(dm.tile_index.slides))

    start = time.perf_counter()
    held = holdout_indices(
        len(dm.tile_index), source.holdout_fraction, source.holdout_max_tiles, dm.seed
    )
    out["holdout_s"] = time.perf_counter() - start
    out["holdout_tiles"] = len(held)

    sampler = DrawSampler(n_train, batch_size=32, seed=dm.seed)
    first: list[int] = []  # only the draws located below are kept: the rest is the sampler's
    start = time.perf_counter()
    for k, draw in enumerate(itertools.islice(iter(sampler), min(draws, n_train))):
        if k < LOCATE_DRAWS:
            first.append(draw)
    elapsed = time.perf_counter() - start
    out["draws"] = k + 1
    out["draws_s"] = elapsed
    out["epoch_est_s"] = elapsed * n_train / (k + 1)
    out["sampler_rss_mb"] = _peak_mb()

    reader, train = dm.train_tiles.reader, dm.train_tiles
    start = time.perf_counter()
    for draw in first:
        s, local = reader.index.locate(train.global_index(draw % n_train))
        reader.grid(int(s)).coords[int(local)]
    out["locate_s"] = time.perf_counter() - start
    out["locate_draws"] = len(first)
    out["coords_cache_mb"] = reader._cached_bytes / 2**20
    out["peak_rss_mb"] = _peak_mb()
    return out


def _row(total: int, r: dict[str, float]) -> str:
    return (
        f"| {total:.0e} | {int(r['slides'])} | {r['setup_s']:.1f} | {r['holdout_s'] * 1e3:.2f} | "
        f"{r['draws_s']:.2f} | {r['epoch_est_s']:.0f} | {r['locate_s']:.1f} | "
        f"{r['import_rss_mb']:.0f} | {r['setup_rss_mb']:.0f} | {r['peak_rss_mb']:.0f} | "
        f"{r['peak_rss_mb'] - r['import_rss_mb']:.0f} |"
    )


def main() -> None:
    """Build the data sets, measure each size in a subprocess, print the table and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", type=Path, default=None, help="data folder (default: a temp dir)")
    parser.add_argument("--slides", type=int, default=10_000, help="slides (10000)")
    parser.add_argument(
        "--tiles", type=float, nargs="+", default=[1e6, 1e7, 1e8], help="totals (1e6 1e7 1e8)"
    )
    parser.add_argument("--draws", type=int, default=1_000_000, help="sampler draws timed (1e6)")
    parser.add_argument(
        "--dtype", choices=["int64", "int32"], default="int64", help="coords dtype on disk"
    )
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # the subprocess
    args = parser.parse_args()
    if args.measure is not None:
        result = measure(args.measure / "slides.csv", args.measure / "coords", args.draws)
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory(prefix="bench_scale_") as tmp:
        root = args.dir or Path(tmp)
        results = {}
        for total in (int(t) for t in args.tiles):
            folder = root / f"{args.slides}slides_{total:.0e}tiles_{args.dtype}"
            write_dataset(folder, args.slides, total, args.dtype)
            env = {**os.environ, "OMP_NUM_THREADS": "1"}
            cmd = [sys.executable, __file__, "--measure", str(folder), "--draws", str(args.draws)]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
            if proc.returncode != 0:
                sys.exit(f"measuring {folder} failed:\n{proc.stderr[-4000:]}")
            results[total] = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"{total:.0e} tiles: {json.dumps(results[total])}", file=sys.stderr)
    print(
        "| tiles | slides | set-up s | hold-out ms | first draws s | epoch est. s (1 rank) | "
        f"locate {LOCATE_DRAWS} s | RSS after imports MB | RSS after set-up MB | peak RSS MB | peak - imports MB |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for total, r in results.items():
        print(_row(total, r))
    small, large = min(results), max(results)
    print(f"draws timed per size: {args.draws}; coords dtype {args.dtype}")
    print(f"ratio={results[large]['peak_rss_mb'] / results[small]['peak_rss_mb']:.3f}")


if __name__ == "__main__":
    main()

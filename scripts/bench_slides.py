"""Benchmark slide reading: tissue detection + grid time, and tiles/s of our dataset vs OpenSlide.

For the shipped sample slide and a generated 20k x 20k pyramidal slide (written once into a
cache folder), prints the time to open the slide, detect tissue and build a 224 px grid at
0.5 um/px; then tiles per second reading the same grid coordinates with (a) a plain loop of
``openslide.OpenSlide.read_region`` + RGB conversion, (b) our ``GridTiles`` dataset in the same
process, (c) ``GridTiles`` through a DataLoader with 2 workers. Each single-process measurement
uses a fresh slide handle (cold tile cache), runs alternate, and the best of the repeats is kept.
The last line is ``ratio=<ours / plain loop>`` in one process, the lower of the two slides.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import openslide
import torch
from torch.utils.data import DataLoader

from slides import SAMPLE_SLIDE, GridTiles, TileGrid, detect_tissue, make_grid, open_slide
from slides.synthetic import write_synthetic_slide


def generated_slide(cache: Path, side: int) -> Path:
    """The generated side x side slide, written on first use."""
    path = cache / f"synthetic_{side}.tif"
    if not path.is_file():
        start = time.perf_counter()
        write_synthetic_slide(path, side, side, mpp=0.5, seed=0)
        size_mb = path.stat().st_size / 2**20
        print(f"generated {path} ({size_mb:.0f} MiB) in {time.perf_counter() - start:.1f} s")
    return path


def grid_time(path: Path) -> tuple[TileGrid, float, float]:
    """(grid, tissue seconds, total open+tissue+grid seconds)."""
    start = time.perf_counter()
    slide = open_slide(path)
    tissue_start = time.perf_counter()
    tissue = detect_tissue(slide)
    tissue_s = time.perf_counter() - tissue_start
    grid = make_grid(slide, mpp=0.5, size=224, min_tissue=0.5, tissue=tissue)
    total = time.perf_counter() - start
    slide.close()
    return grid, tissue_s, total


def plain_loop(path: Path, grid: TileGrid, coords: np.ndarray) -> float:
    """Seconds for OpenSlide read_region + RGB array on each coordinate (fresh handle)."""
    osr = openslide.OpenSlide(str(path))
    size = (grid.read_size, grid.read_size)
    start = time.perf_counter()
    for x, y in coords:
        np.asarray(osr.read_region((int(x), int(y)), grid.level, size).convert("RGB"))
    elapsed = time.perf_counter() - start
    osr.close()
    return elapsed


def ours_loop(path: Path, grid: TileGrid, n: int) -> float:
    """Seconds for GridTiles items 0..n-1 in this process (fresh handle)."""
    dataset = GridTiles(path, grid)
    start = time.perf_counter()
    for i in range(n):
        dataset[i]
    return time.perf_counter() - start


def loader_loop(path: Path, grid: TileGrid, n: int, workers: int) -> tuple[float, float]:
    """(tiles/s overall, tiles/s after the first batch) through a DataLoader."""
    subset = TileGrid(**{**grid.__dict__, "coords": grid.coords[:n]})
    loader = DataLoader(GridTiles(path, subset), batch_size=32, num_workers=workers)
    start = time.perf_counter()
    first_at, first_count, count = 0.0, 0, 0
    for _, coords in loader:
        count += len(coords)
        if not first_count:
            first_at, first_count = time.perf_counter(), count
    elapsed = time.perf_counter() - start
    if count != n:
        raise RuntimeError(f"DataLoader yielded {count} tiles, expected {n}")
    steady = (count - first_count) / max(elapsed - (first_at - start), 1e-9)
    return count / elapsed, steady


def bench_slide(label: str, path: Path, max_tiles: int, repeats: int) -> float:
    """Print the figures for one slide and return its ours/plain ratio."""
    grid, tissue_s, total_s = grid_time(path)
    width, height = grid.level0_width, grid.level0_height
    print(
        f"[{label}] {width}x{height}: tissue {tissue_s:.2f} s, open+tissue+grid {total_s:.2f} s, "
        f"{len(grid)} tiles (level {grid.level}, read {grid.read_size} px)"
    )
    n = min(max_tiles, len(grid))
    if n == 0:
        raise RuntimeError(f"{path}: no tissue tiles to read")
    coords = grid.coords[:n]
    plain, ours = [], []
    for _ in range(repeats):
        plain.append(plain_loop(path, grid, coords))
        ours.append(ours_loop(path, grid, n))
    plain_rate, ours_rate = n / min(plain), n / min(ours)
    loader_rate, loader_steady = loader_loop(path, grid, n, workers=2)
    ratio = ours_rate / plain_rate
    print(
        f"[{label}] {n} tiles x{repeats}: plain OpenSlide loop {plain_rate:.0f} tiles/s, "
        f"GridTiles {ours_rate:.0f} tiles/s (ratio {ratio:.3f}), "
        f"DataLoader 2 workers {loader_rate:.0f} tiles/s ({loader_steady:.0f} after start-up)"
    )
    return ratio


def main() -> None:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer tiles and repeats (~1 min)")
    parser.add_argument("--side", type=int, default=20000, help="generated slide side (20000)")
    parser.add_argument("--tiles", type=int, default=None, help="tiles per measurement")
    parser.add_argument("--repeats", type=int, default=None, help="repeats (best kept)")
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "vitkd_bench_slides",
        help="folder keeping the generated slide between runs",
    )
    args = parser.parse_args()
    tiles = args.tiles or (300 if args.quick else 1500)
    repeats = args.repeats or (2 if args.quick else 3)
    torch.set_num_threads(1)
    args.cache.mkdir(parents=True, exist_ok=True)
    ratios = [bench_slide("sample", SAMPLE_SLIDE, tiles, repeats)]
    ratios.append(bench_slide("generated", generated_slide(args.cache, args.side), tiles, repeats))
    print(f"ratio={min(ratios):.3f}")


if __name__ == "__main__":
    main()

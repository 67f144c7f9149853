"""Command line: `python -m slides tile SLIDE_OR_DIR --out DIR` writes grids and thumbnails."""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from slides.errors import SlideError
from slides.grid import TileGrid, grid_geometry, make_grid
from slides.grid_io import save_grid
from slides.layout import LAYOUTS, Layout, coords_file, thumbnail_file
from slides.paths import find_slides
from slides.slide import Slide, open_slide
from slides.thumbnail import save_grid_thumbnail
from slides.tissue import TissueMask, detect_tissue

ERROR_LOG = "errors.log"


def explain_empty_grid(slide: Slide, grid: TileGrid, tissue: TissueMask, min_tissue: float) -> str:
    """Why a slide got no tiles, and the option that would give it some."""
    _, size_level0, _ = grid_geometry(slide, grid.mpp, grid.size)
    width0, height0 = slide.dimensions
    if width0 < size_level0 or height0 < size_level0:
        return (
            f"the slide ({width0} x {height0} px at {slide.mpp:.3g} um/px) is smaller than one "
            f"{grid.size} px tile at {grid.mpp} um/px; lower --size or --mpp, or check --slide-mpp"
        )
    if tissue.area_fraction == 0:
        return (
            "no tissue was detected on the thumbnail (faint or unusual staining?); "
            "--min-tissue 0 keeps every tile"
        )
    every = make_grid(slide, grid.mpp, grid.size, grid.overlap, 0.0)
    best = float(tissue.fractions(every.coords, size_level0, size_level0).max())
    suggest = max(0.0, np.floor(best * 20) / 20)  # a round value that keeps the best tiles
    return (
        f"tissue covers {tissue.area_fraction:.1%} of the slide, but no tile reaches "
        f"--min-tissue {min_tissue} (the best tile has {best:.0%} tissue); loosen the "
        f"threshold, e.g. --min-tissue {suggest:g}, or --min-tissue 0 to keep every tile"
    )


def tile_slide(
    path: Path,
    out: Path,
    mpp: float,
    size: int,
    overlap: int = 0,
    min_tissue: float = 0.5,
    slide_mpp: float | None = None,
    layout: Layout = "flat",
) -> int:
    """Write the coords HDF5 and the thumbnail PNG of one slide under `out`; return tile count.

    `layout` `flat` writes `<out>/<name>.h5` and `<out>/<name>.png`; `trident` writes TRIDENT's
    `<out>/patches/<name>_patches.h5` and `<out>/visualization/<name>.png`.

    A slide without tiles is still written (an empty grid marks it done), with a warning on
    stderr that says why it has none and how to loosen the tissue threshold.
    """
    with open_slide(path, mpp=slide_mpp) as slide:
        tissue = detect_tissue(slide)
        grid = make_grid(slide, mpp, size, overlap, min_tissue, tissue)
        if len(grid) == 0:
            hint = explain_empty_grid(slide, grid, tissue, min_tissue)
            tqdm.write(f"warning: {path.name}: 0 tissue tiles: {hint}", file=sys.stderr)
        save_grid_thumbnail(thumbnail_file(out, slide.name, layout), slide, grid)
        # written last: its presence means "done"
        save_grid(coords_file(out, slide.name, layout), grid)
    return len(grid)


def _parser() -> argparse.ArgumentParser:
    """The argument parser with its `tile` sub-command."""
    parser = argparse.ArgumentParser(prog="python -m slides", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    tile = commands.add_parser(
        "tile",
        help="tile slides: one coords HDF5 and one thumbnail PNG per slide",
        description="Tile tissue at a target resolution. Writes <out>/<slide>.h5 (TRIDENT "
        "'coords') and <out>/<slide>.png (thumbnail with the grid drawn); slides already done "
        "are skipped unless --overwrite.",
    )
    tile.add_argument("source", type=Path, help="a slide, a folder of slides, or a CSV of paths")
    tile.add_argument("--out", type=Path, required=True, help="output folder")
    tile.add_argument("--mpp", type=float, default=0.5, help="tile microns per pixel (0.5)")
    tile.add_argument("--size", type=int, default=224, help="tile side in pixels (224)")
    tile.add_argument("--overlap", type=int, default=0, help="overlap in pixels at --mpp (0)")
    tile.add_argument("--min-tissue", type=float, default=0.5, help="min tissue fraction (0.5)")
    tile.add_argument(
        "--slide-mpp", type=float, default=None, help="level-0 MPP for slides whose files lack it"
    )
    tile.add_argument(
        "--skip-errors", action="store_true", help=f"log failing slides to <out>/{ERROR_LOG}, go on"
    )
    tile.add_argument("--overwrite", action="store_true", help="redo slides already tiled")
    tile.add_argument(
        "--layout",
        choices=LAYOUTS,
        default="flat",
        help="flat: <out>/<slide>.h5; trident: <out>/patches/<slide>_patches.h5 (TRIDENT's job "
        "layout, for its batch runner)",
    )
    return parser


def _check_unique(paths: list[Path]) -> None:
    """Outputs are named by slide stem: two slides with one stem would overwrite each other."""
    clashes = [name for name, n in Counter(p.stem for p in paths).items() if n > 1]
    if clashes:
        raise SlideError(
            f"several slides are named {clashes[0]!r} (e.g. "
            f"{', '.join(str(p) for p in paths if p.stem == clashes[0])}); "
            "tile them into separate --out folders."
        )


def run_tile(args: argparse.Namespace) -> int:
    """Tile every slide of `args.source`; return the process exit code."""
    out: Path = args.out
    paths = find_slides(args.source, exclude=[out])
    _check_unique(paths)
    out.mkdir(parents=True, exist_ok=True)
    done = skipped = failed = tiles = empty = 0
    bar = tqdm(paths, desc="tiling", unit="slide")
    for path in bar:
        bar.set_postfix_str(path.name)
        if (
            not args.overwrite
            and coords_file(out, path.stem, args.layout).is_file()
            and thumbnail_file(out, path.stem, args.layout).is_file()
        ):
            skipped += 1
            continue
        try:
            n = tile_slide(
                path,
                out,
                args.mpp,
                args.size,
                args.overlap,
                args.min_tissue,
                args.slide_mpp,
                args.layout,
            )
            tiles += n
            empty += n == 0
            done += 1
        except Exception as err:
            if not args.skip_errors and not isinstance(err, SlideError):
                raise
            message = str(err) if isinstance(err, SlideError) else f"{type(err).__name__}: {err}"
            if not args.skip_errors:
                bar.close()
                print(f"error: {message}", file=sys.stderr)
                print("(pass --skip-errors to log failing slides and go on)", file=sys.stderr)
                return 1
            failed += 1
            with (out / ERROR_LOG).open("a") as log:
                log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')}\t{path}\t{message}\n")
            tqdm.write(f"skipped {path.name}: {message}", file=sys.stderr)
    bar.close()
    print(
        f"{done} slide(s) tiled ({tiles} tiles"
        + (f"; {empty} with none, see the warnings" if empty else "")
        + f"), {skipped} already done, {failed} failed"
        + (f" (see {out / ERROR_LOG})" if failed else "")
        + f"; outputs in {out}"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m slides`."""
    args = _parser().parse_args(argv)
    try:
        return run_tile(args)
    except SlideError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1

"""Draw a labelled grid of the stain and scanner augmentations on tissue tiles of a slide."""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from slides.atomic import atomic_path
from vitkd.data.augment import CropAugmenter, isolate
from vitkd.data.multicrop import MultiCrop

# (column label, operation, strength overrides): one column per stain or scanner operation.
STAIN_COLUMNS = [
    ("stain preset", "stain_preset", {}),
    ("Macenko perturb", "macenko", {}),
    ("HED jitter", "hed", {}),
    ("Planckian", "planckian", {}),
    ("gamma", "gamma", {}),
    ("bright/contrast", "brightness_contrast", {}),
    ("hue/saturation", "hue_saturation", {}),
]
SCANNER_COLUMNS = [
    ("defocus r2.5", "defocus", {"defocus_radius": (2.5, 2.5)}),
    ("blur s1.5", "blur", {"blur_sigma": (1.5, 1.5)}),
    ("downscale 0.4", "downscale", {"downscale": (0.4, 0.4)}),
    ("noise s6", "noise", {"noise_std": (6.0, 6.0)}),
    ("sharpen 1.0", "sharpen", {"sharpen_amount": (1.0, 1.0)}),
    ("JPEG q20", "jpeg", {"jpeg_quality": (20, 20)}),
]


def tissue_tiles(path: Path, n: int, size: int) -> list[np.ndarray]:
    """``n`` tissue-rich ``size`` px tiles at 0.5 um/px, spread over the slide."""
    try:
        import slides

        slide = slides.open_slide(path)
        grid = slides.make_grid(slide, mpp=0.5, size=size, min_tissue=0.8)
        if len(grid.coords) < n:
            raise ValueError(f"{path} has only {len(grid.coords)} tissue tiles, {n} wanted")
        picks = np.linspace(0, len(grid.coords) - 1, n).round().astype(int)
        return [grid.read_tile(slide, int(i)) for i in picks]
    except (ImportError, AttributeError):
        return _tiles_with_openslide(path, n, size)


def _tiles_with_openslide(path: Path, n: int, size: int) -> list[np.ndarray]:
    # Fallback while the slides package is not importable: level 0 of a ~0.5 um/px slide.
    import openslide

    slide = openslide.OpenSlide(str(path))
    w, h = slide.dimensions
    tiles, scores = [], []
    for y in range(0, h - size + 1, size):
        for x in range(0, w - size + 1, size):
            tile = np.asarray(slide.read_region((x, y), 0, (size, size)).convert("RGB"))
            sat = cv2.cvtColor(tile, cv2.COLOR_RGB2HSV)[..., 1]
            tiles.append(tile)
            scores.append(float((sat > 25).mean()))
    rich = [t for t, s in zip(tiles, scores, strict=True) if s > 0.8] or tiles
    picks = np.linspace(0, len(rich) - 1, n).round().astype(int)
    return [rich[i] for i in picks]


def columns(tile: np.ndarray, seed: int) -> list[tuple[str, np.ndarray]]:
    """The clean tile, each stain and scanner operation, and a multi-crop sample."""
    cols = [("clean", tile)]
    for label, op, strength in STAIN_COLUMNS + SCANNER_COLUMNS:
        aug = CropAugmenter(isolate(op, **strength))
        cols.append((label, aug(tile, np.random.default_rng(seed))))
    crops = MultiCrop(augment="pathology", teacher_view="light", seed=seed)(tile)
    for key, idx, label in (
        ("global", 0, "student global-1"),
        ("global", 1, "student global-2"),
        ("local", 0, "student local"),
        ("teacher", 0, "teacher global-1"),
    ):
        cols.append((label, crops[key][idx].permute(1, 2, 0).numpy()))
    return cols


def draw_grid(rows: list[list[tuple[str, np.ndarray]]], cell: int) -> Image.Image:
    """Tile the images into a labelled grid image."""
    pad, head = 4, 36
    n_cols = len(rows[0])
    grid = Image.new("RGB", (n_cols * (cell + pad) + pad, head + len(rows) * (cell + pad)), "white")
    draw = ImageDraw.Draw(grid)
    font = ImageFont.load_default(size=12)
    groups = [
        ("", 1),
        ("stain family", len(STAIN_COLUMNS)),
        ("scanner family", len(SCANNER_COLUMNS)),
    ]
    groups.append(("multi-crop (pathology, teacher_view=light)", 4))
    x0 = pad
    for name, span in groups:
        draw.text((x0, 2), name, fill=(120, 0, 0), font=font)
        x0 += span * (cell + pad)
    for c, (label, _) in enumerate(rows[0]):
        draw.text((pad + c * (cell + pad), 18), label, fill="black", font=font)
    for r, row in enumerate(rows):
        for c, (_, img) in enumerate(row):
            thumb = cv2.resize(img, (cell, cell), interpolation=cv2.INTER_AREA)
            grid.paste(Image.fromarray(thumb), (pad + c * (cell + pad), head + r * (cell + pad)))
    return grid


def main() -> None:
    """Parse arguments, render the grid, write it atomically."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--slide", type=Path, required=True, help="whole-slide image to sample")
    parser.add_argument("--out", type=Path, default=Path("aug.png"), help="output PNG")
    parser.add_argument("--tiles", type=int, default=3, help="number of tissue tiles (rows)")
    parser.add_argument("--cell", type=int, default=104, help="displayed size of each image, px")
    parser.add_argument("--seed", type=int, default=0, help="seed of the augmentation draws")
    args = parser.parse_args()
    if not args.slide.is_file():
        parser.error(f"--slide {args.slide} does not exist")
    tiles = tissue_tiles(args.slide, args.tiles, 224)
    rows = [columns(tile, args.seed + i) for i, tile in enumerate(tiles)]
    grid = draw_grid(rows, args.cell)
    with atomic_path(args.out) as tmp:
        grid.save(tmp, optimize=True)
    print(f"wrote {args.out} ({grid.width}x{grid.height}, {args.out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()

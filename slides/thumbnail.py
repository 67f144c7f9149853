"""A PNG thumbnail of a slide with its tile grid drawn, to check a tiling at a glance."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

from slides.atomic import atomic_path
from slides.grid import TileGrid
from slides.slide import Slide

GRID_COLOUR = (0, 160, 60)


def save_grid_thumbnail(
    path: str | Path, slide: Slide, grid: TileGrid, max_side: int = 1024
) -> Path:
    """Write a thumbnail (longest side `max_side`) with each tile's outline drawn.

    Args:
        path: output PNG.
        slide: the slide the grid was made for.
        grid: the tiles to draw.
        max_side: longest side of the thumbnail in pixels.
    """
    path = Path(path)
    thumb = Image.fromarray(slide.get_thumbnail((max_side, max_side)))
    scale_x = thumb.width / grid.level0_width
    scale_y = thumb.height / grid.level0_height
    draw = ImageDraw.Draw(thumb)
    side_x, side_y = grid.size_level0 * scale_x, grid.size_level0 * scale_y
    width = 2 if min(side_x, side_y) >= 12 else 1
    for x, y in grid.coords:
        x0, y0 = x * scale_x, y * scale_y
        draw.rectangle((x0, y0, x0 + side_x - 1, y0 + side_y - 1), outline=GRID_COLOUR, width=width)
    with atomic_path(path) as tmp:
        thumb.save(tmp, format="PNG")
    return path

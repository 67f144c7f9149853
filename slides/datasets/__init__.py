"""Torch datasets streaming tiles: random tissue tiles, grid walks, and tile-image folders."""

from slides.datasets.grid_tiles import GridTiles
from slides.datasets.random_tiles import RandomTissueTiles
from slides.datasets.tile_folder import TileFolder

__all__ = ["GridTiles", "RandomTissueTiles", "TileFolder"]

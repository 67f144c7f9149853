"""uint8 tile -> model input: the one resize every embedding path uses (`vitkd.embed`, `evaluation`).

The resize is torch's antialiased bilinear (`F.interpolate(..., antialias=True)`) on float
pixels, rounded once to uint8. Why this one:

- Antialiased: downscaling (e.g. 256 -> 224 px tiles, 0.25 -> 0.5 um/px) must low-pass first or it
  aliases; plain bilinear samples 4 pixels whatever the scale.
- One rounding: PIL's BILINEAR is antialiased too (torch's kernel is written to match it), but it
  rounds to uint8 between its horizontal and vertical passes; the two differ by up to one grey
  level (mean 0.18 on the sample slide's 256 -> 224 px tiles).
- Identical whatever the input type: numpy arrays, PIL images and torch tensors all go through
  the same call, so a tile read by a slide reader, a PIL loader or handed over as a tensor gives
  the same model input, bit for bit.

The output stays uint8: the model normalises uint8 itself, and uint8 batches are 4x cheaper to
move between workers, pinned memory and the device.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

TileInput = np.ndarray | Image.Image | torch.Tensor


def _as_chw(tile: TileInput) -> torch.Tensor:
    """(3, H, W) uint8 tensor of an (H, W, 3) uint8 array/PIL RGB image or a (3, H, W) uint8 tensor."""
    if isinstance(tile, torch.Tensor):
        if tile.ndim != 3 or tile.shape[0] != 3 or tile.dtype != torch.uint8:
            raise ValueError(
                f"tensor tiles must be (3, H, W) uint8 RGB, got {tuple(tile.shape)} {tile.dtype}"
            )
        return tile
    if isinstance(tile, Image.Image):
        if tile.mode != "RGB":
            raise ValueError(f"PIL tiles must be RGB, got mode {tile.mode!r}")
        tile = np.asarray(tile)
    if tile.ndim != 3 or tile.shape[2] != 3 or tile.dtype != np.uint8:
        raise ValueError(f"tiles must be (H, W, 3) uint8 RGB, got {tile.shape} {tile.dtype}")
    if not tile.flags.writeable:
        tile = tile.copy()  # e.g. np.asarray of a PIL image; torch wants writable memory
    return torch.from_numpy(tile).permute(2, 0, 1)


def resize_tile(tile: TileInput, size: int) -> torch.Tensor:
    """(3, size, size) uint8 model input; resizes (antialiased bilinear) only when the side differs.

    Args:
        tile: (H, W, 3) uint8 array, RGB PIL image, or (3, H, W) uint8 tensor.
        size: side of the model input in pixels.
    """
    chw = _as_chw(tile)
    if chw.shape[1] == size and chw.shape[2] == size:
        return chw
    out = F.interpolate(
        chw[None].float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False
    )[0]
    return out.round_().clamp_(0, 255).to(torch.uint8)


def tiles_to_batch(tiles: Sequence[TileInput], size: int) -> torch.Tensor:
    """(B, 3, size, size) uint8 batch of tiles, each through `resize_tile`."""
    return torch.stack([resize_tile(t, size) for t in tiles])


class ToCHW:
    """Transform for tile datasets: a tile -> (3, size, size) uint8 tensor via `resize_tile`."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, tile: TileInput) -> torch.Tensor:
        return resize_tile(tile, self.size)

"""The one tile -> model-input resize: antialiased, and identical for numpy, PIL and torch tiles."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from slides import SAMPLE_SLIDE, make_grid, open_slide
from vitkd.embed.preprocess import ToCHW, resize_tile, tiles_to_batch


def _tile(side: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)


@pytest.mark.parametrize("side", [56, 64, 40, 97])
def test_numpy_pil_and_tensor_tiles_give_the_same_input(side: int) -> None:
    tile = _tile(side)
    from_numpy = resize_tile(tile, 56)
    from_pil = resize_tile(Image.fromarray(tile), 56)
    from_tensor = resize_tile(torch.from_numpy(tile).permute(2, 0, 1), 56)
    assert from_numpy.dtype == torch.uint8 and from_numpy.shape == (3, 56, 56)
    assert torch.equal(from_numpy, from_pil)
    assert torch.equal(from_numpy, from_tensor)


def test_matching_size_is_returned_unchanged() -> None:
    tile = _tile(56)
    np.testing.assert_array_equal(resize_tile(tile, 56).permute(1, 2, 0).numpy(), tile)


def test_resize_is_antialiased_bilinear_rounded_once() -> None:
    tile = _tile(64)
    ref = F.interpolate(
        torch.from_numpy(tile).permute(2, 0, 1)[None].double(),
        size=(56, 56),
        mode="bilinear",
        antialias=True,
        align_corners=False,
    )[0]
    got = resize_tile(tile, 56).double()
    assert (got - ref).abs().max() <= 0.5 + 1e-4


def test_downscaling_a_checkerboard_gives_grey_not_aliasing() -> None:
    """A 1-px checkerboard halved must come out mid-grey; plain bilinear picks one phase."""
    board = ((np.indices((64, 64)).sum(0) % 2) * 255).astype(np.uint8)
    rgb = np.repeat(board[..., None], 3, axis=2)
    interior = resize_tile(rgb, 32).float()[:, 1:-1, 1:-1]  # the borders see a clamped edge
    assert (interior - 127.5).abs().max() <= 1.0
    plain = F.interpolate(torch.from_numpy(rgb).permute(2, 0, 1)[None].float(), size=(32, 32))
    assert (plain - 127.5).abs().min() > 100  # what an unfiltered resize does


def test_pil_bilinear_differs_by_at_most_one_grey_level_on_the_sample_slide() -> None:
    """PIL's BILINEAR (the old `vitkd.embed` resize) rounds between passes; it stays within 1."""
    with open_slide(SAMPLE_SLIDE) as slide:
        grid = make_grid(slide, mpp=0.5, size=64, overlap=0, min_tissue=0.25)
        tiles = [grid.read_tile(slide, i) for i in range(min(8, len(grid)))]
    ours = tiles_to_batch(tiles, 56).int()
    pil = torch.stack(
        [
            torch.from_numpy(np.array(Image.fromarray(t).resize((56, 56), Image.BILINEAR)))
            .permute(2, 0, 1)
            .int()
            for t in tiles
        ]
    )
    assert (ours - pil).abs().max() <= 1


def test_to_chw_is_resize_tile_and_rejects_non_rgb() -> None:
    tile = _tile(64, seed=3)
    assert torch.equal(ToCHW(56)(tile), resize_tile(tile, 56))
    with pytest.raises(ValueError, match="uint8 RGB"):
        resize_tile(tile.astype(np.float32), 56)
    with pytest.raises(ValueError, match="RGB"):
        resize_tile(Image.fromarray(tile).convert("L"), 56)

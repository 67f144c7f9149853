"""Cached tokens follow the student's view: grid-aligned crops, flips and quarter turns."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from cache_fixtures import TEACHER, source

from vitkd.cache.builder import BuildOptions, build_cache
from vitkd.cache.collate import CachedMultiCropCollate
from vitkd.cache.dataset import CachedDraws, CacheTiles
from vitkd.cache.geometry import GridCrop, dihedral, track_tokens
from vitkd.cache.manifest import CacheManifest
from vitkd.cache.shard import TileTargets
from vitkd.cache.teachers import CacheTeacher, build_teachers, teacher_blocks
from vitkd.data.collate import MaskConfig

D4 = list(itertools.product((False, True), range(4)))


def _torch_view(grid: torch.Tensor, flip: bool, turns: int) -> torch.Tensor:
    """The same transform written with torch ops (an independent restatement)."""
    if flip:
        grid = torch.flip(grid, dims=(1,))
    return torch.rot90(grid, turns, dims=(0, 1))


@pytest.mark.parametrize(("flip", "turns"), D4)
@pytest.mark.parametrize(("row", "col", "side"), [(0, 0, 8), (2, 3, 4), (5, 1, 3), (7, 7, 1)])
def test_index_arithmetic_matches_torch_flip_and_rot90(
    flip: bool, turns: int, row: int, col: int, side: int
) -> None:
    # unit 28 px = 2 patches of 14: the crop of `side` cells is 2*side tokens a side
    grid, patch, unit = (16, 16), 14, 28
    ids = torch.arange(256).view(16, 16)
    k = 2 * side
    view = _torch_view(ids[2 * row : 2 * row + k, 2 * col : 2 * col + k], flip, turns).reshape(-1)
    index = np.random.default_rng(row * 10 + col).permutation(256)[:40]
    keep, new, view_grid = track_tokens(
        index, grid, patch, GridCrop(row, col, side, unit, flip, turns)
    )
    assert view_grid == (k, k)
    inside = set(view.tolist())
    np.testing.assert_array_equal(keep, [i in inside for i in index])
    # the token cached at index[p] is the one the view shows at new[p]
    np.testing.assert_array_equal(view[torch.from_numpy(new)].numpy(), index[keep])


def test_the_eight_transforms_are_distinct() -> None:
    grid = np.arange(9).reshape(3, 3)
    seen = {dihedral(grid, f, t).tobytes() for f, t in D4}
    assert len(seen) == 8


def _manifest(size: int, patch: int, tokens: int) -> CacheManifest:
    g = size // patch
    teacher = {"key": "t", "grid": [g, g], "patch_size": patch, "patch_tokens": tokens}
    return CacheManifest(
        teachers=[teacher],
        image={"size": size, "encoding": "png", "quality": None},
        tiles={"count": 1},
        shard_size=8,
        seed=0,
    )


@pytest.mark.parametrize("scale", [(1.0, 1.0), (0.25, 0.25), (0.5625, 0.5625)])
def test_views_show_the_tracked_token_at_its_index(scale: tuple[float, float]) -> None:
    """A tile whose 14 px cells are painted with their token id: after the collate's crop,
    resize (to the crop's own size, so exact), flip and turn, the cell at `index` shows the id
    the cached token was stored with."""
    size, patch, g = 112, 14, 8
    ids = np.arange(g * g).reshape(g, g)
    image = np.repeat(np.repeat(ids, patch, 0), patch, 1).astype(np.uint8)
    image = np.stack([image, 255 - image, np.full_like(image, 7)], -1)
    side = round(np.sqrt(scale[0]) * g)
    collate = CachedMultiCropCollate(
        _manifest(size, patch, 20),
        ["t"],
        MaskConfig(patch_size=14),
        global_size=side * patch,
        local_size=28,
        n_global=2,
        n_local=1,
        global_scale=scale,
        augment="none",
        teacher_view="clean",
    )
    samples = []
    for s in range(6):
        index = np.random.default_rng(s).permutation(g * g)[:20]
        patches = np.zeros((20, 4), np.float16)
        patches[:, 0] = index
        targets = {"t": TileTargets(np.full(4, s, np.float16), patches, index)}
        samples.append({"image": image, "targets": targets, "seed": 1000 + s})
    batch = collate(samples)
    cache = batch["cache"]["t"]
    assert cache["grid"] == (side, side)
    assert batch["global"].shape == (12, 3, side * patch, side * patch)
    assert cache["patches"].shape[:2] == cache["index"].shape and cache["index"].shape[0] == 12
    assert cache["index"].shape[1] >= 1
    if scale == (1.0, 1.0):
        assert cache["index"].shape[1] == 20  # a full view keeps every cached token
    np.testing.assert_array_equal(cache["cls"][:, 0].numpy(), [0, 1, 2, 3, 4, 5] * 2)
    shown = batch["global"][:, 0, patch // 2 :: patch, patch // 2 :: patch].flatten(1)  # (12, k*k)
    stored = cache["patches"][..., 0].long()
    np.testing.assert_array_equal(shown.gather(1, cache["index"]).numpy(), stored.numpy())
    orientations = set()
    for row in shown.view(12, side, side):
        orientations.add(row[0, 0].item() - row[-1, -1].item())
    assert len(orientations) > 1  # the views were flipped and turned


def _equivariant(teacher: CacheTeacher) -> CacheTeacher:
    """No position embedding and a patch kernel symmetric under flips and quarter turns: the
    ViT's tokens of a flipped or turned image are exactly its tokens, moved."""
    model = teacher.backbone.model
    with torch.no_grad():
        model.pos_embed.zero_()
        w = model.patch_embed.proj.weight
        w.copy_(
            sum(_torch_view(w.permute(2, 3, 0, 1), f, t) for f, t in D4).permute(2, 3, 0, 1) / 8
        )
    from vitkd.models.fingerprint import teacher_fingerprint

    teacher.fingerprint = teacher_fingerprint(teacher.backbone)
    return teacher


def test_an_equivariant_teacher_sees_the_tracked_tokens(slide_dir: Path, tmp_path: Path) -> None:
    """Where recomputing is exact, the teacher of the transformed view gives the cached tokens at
    the tracked indices, and the cached CLS."""
    teacher = _equivariant(build_teachers(teacher_blocks({"teacher": TEACHER}))[0])
    out = tmp_path / "c"
    build_cache(
        [teacher],
        source(slide_dir),
        BuildOptions(out, encoding="png", patch_tokens=16, shard_size=8),
        say=lambda _: None,
    )
    tiles = CacheTiles(out)
    collate = CachedMultiCropCollate(
        tiles.manifest,
        tiles.keys,
        MaskConfig(patch_size=14),
        global_size=56,
        local_size=28,
        n_global=2,
        n_local=0,
        global_scale=(1.0, 1.0),
        augment="none",
        teacher_view="clean",
    )
    draws = CachedDraws(tiles, seed=3)
    batch = collate([draws[i] for i in range(8)])
    torch.testing.assert_close(batch["teacher"], batch["global"])
    cache = batch["cache"][teacher.key]
    with torch.no_grad():
        tokens = teacher.backbone.forward_tokens(batch["teacher"])
    index = cache["index"].unsqueeze(-1).expand(-1, -1, tokens.patches.shape[-1])
    live = tokens.patches.gather(1, index)
    torch.testing.assert_close(cache["patches"].float(), live, atol=2e-3, rtol=2e-3)
    torch.testing.assert_close(cache["cls"].float(), tokens.cls, atol=2e-3, rtol=2e-3)
    # and a non-trivial transform was drawn: the views differ from the cached images
    stored = torch.stack([torch.from_numpy(tiles[i][0]).permute(2, 0, 1) for i in range(8)])
    assert not torch.equal(batch["global"][:8], stored)

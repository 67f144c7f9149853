"""Parity: the loss with the cache equals the loss with the live teacher for the same draw."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from cache_fixtures import source, tiny_module
from test_token_tracking import _equivariant

from vitkd.cache.builder import BuildOptions, build_cache
from vitkd.cache.collate import CachedMultiCropCollate
from vitkd.cache.dataset import CachedDraws, CacheTiles
from vitkd.cache.teachers import CacheTeacher
from vitkd.data.collate import MaskConfig
from vitkd.distill.module import DistillationModule


def _cache_of(module: DistillationModule, slide_dir: Path, out: Path, equivariant: bool) -> Path:
    entry = module.teacher_entries[0]
    teacher = CacheTeacher(entry.key, entry.config, None, module.teacher, 0.0)
    if equivariant:
        teacher = _equivariant(teacher)  # edits module.teacher in place
    options = BuildOptions(out, encoding="png", patch_tokens=16, shard_size=8)
    build_cache([teacher], source(slide_dir), options, say=lambda _: None)
    return out


@pytest.mark.parametrize("transforms", [False, True])
def test_cached_loss_equals_live_loss(slide_dir: Path, tmp_path: Path, transforms: bool) -> None:
    """Full-size views keep every cached token (all 16 of the 4 x 4 grid). Without flips and
    turns any teacher gives the same targets live and cached; with them, a teacher that is
    exactly equivariant (no position embedding, symmetric patch kernel) does."""
    module = tiny_module()
    folder = _cache_of(module, slide_dir, tmp_path / "c", equivariant=transforms)
    tiles = CacheTiles(folder)
    collate = CachedMultiCropCollate(
        tiles.manifest,
        tiles.keys,
        MaskConfig(patch_size=14),
        global_size=56,
        local_size=28,
        n_global=2,
        n_local=2,
        global_scale=(1.0, 1.0),
        augment="none",
        teacher_view="clean",
        flip=transforms,
        rotate=transforms,
    )
    draws = CachedDraws(tiles, seed=1)
    batch = collate([draws[i] for i in range(6)])
    assert batch["cache"][module.teacher_entries[0].key]["index"].shape == (12, 16)
    live_batch = {k: v for k, v in batch.items() if k != "cache"}
    module.eval()  # no drop path: the two calls see the same student
    with torch.no_grad():
        cached = module.compute_losses(batch)
        live = module.compute_losses(live_batch)
    assert set(cached) == set(live) and "feature_patch" in cached and "feature_cls" in cached
    for name in live:
        torch.testing.assert_close(cached[name], live[name], atol=2e-3, rtol=2e-3)
    # the cache did replace the teacher: a teacher that would give other targets changes nothing
    with torch.no_grad():
        module.teacher.model.norm.bias.add_(1.0)  # the loss is scale-invariant: shift it
        again = module.compute_losses(batch)
        changed = module.compute_losses(live_batch)
    for name in live:
        torch.testing.assert_close(again[name], cached[name])
    assert not torch.allclose(changed["feature_patch"], live["feature_patch"])

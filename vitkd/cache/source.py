"""`data.source.cache`: open a cache for training, split off the held-out tiles, check teachers."""

from __future__ import annotations

from typing import Any

from torch.utils.data import Subset

from vitkd.cache.collate import CachedMultiCropCollate
from vitkd.cache.dataset import CachedDraws, CacheTiles
from vitkd.cache.errors import CacheError
from vitkd.cache.manifest import read_manifest
from vitkd.cache.verify import check_cache_teachers, module_teachers
from vitkd.data.collate import MaskConfig
from vitkd.data.holdout import split_holdout


def open_cache(
    folder: str,
    batch_size: int,
    holdout_fraction: float,
    holdout_max_tiles: int,
    seed: int,
    module: Any | None = None,
) -> tuple[CacheTiles, Subset, Subset]:
    """(all tiles, training tiles, held-out tiles) of the cache in `folder`.

    With `module` (a `DistillationModule`), its teachers are checked against the cached ones
    first (fingerprint and normalisation) and only the teachers both have are read.

    Raises:
        CacheMismatchError: the cache was built for other teachers.
        CacheError: a shard is missing or unreadable, or the cache has fewer training tiles
            than one batch.
    """
    manifest = read_manifest(folder)
    keys = None
    if module is not None and not getattr(module, "self_distill", False):
        teachers = module_teachers(module)
        check_cache_teachers(manifest, str(folder), teachers)
        keys = [t["key"] for t in manifest.teachers if t["key"] in teachers]
    tiles = CacheTiles(folder, keys)
    train, hold = split_holdout(len(tiles), holdout_fraction, holdout_max_tiles, seed)
    if len(train) < batch_size:
        raise CacheError(
            f"the cache {folder} holds {len(tiles)} tiles, {len(train)} for training after "
            f"{len(hold)} held out: fewer than data.batch_size={batch_size}. Every batch needs "
            "distinct cached tiles: cache more slides, lower data.batch_size or "
            "data.source.holdout_fraction"
        )
    return tiles, Subset(tiles, train.tolist()), Subset(tiles, hold.tolist())


def cached_loader_parts(
    tiles: CacheTiles, train: Subset, crops: Any, masking: MaskConfig, seed: int
) -> tuple[CachedDraws, CachedMultiCropCollate]:
    """The training dataset and collate of a cache, with `crops` (a `CropConfig`)."""
    collate = CachedMultiCropCollate(
        tiles.manifest,
        tiles.keys,
        masking,
        global_size=crops.global_size,
        local_size=crops.local_size,
        n_global=crops.n_global,
        n_local=crops.n_local,
        global_scale=crops.global_scale,
        local_scale=crops.local_scale,
        augment=crops.augment,
        teacher_view=crops.teacher_view,
    )
    return CachedDraws(train, seed=seed), collate

"""Training data read from a teacher-feature cache: tiles with their teachers' targets."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from vitkd.cache.encoding import decode_tile
from vitkd.cache.manifest import CacheManifest, read_manifest, shard_name
from vitkd.cache.shard import ShardReader, TileTargets
from vitkd.data.multicrop_dataset import draw_seed

# open shard files per process (a DataLoader worker reads random tiles of every shard)
MAX_OPEN_SHARDS = 64


class CacheTiles(Dataset):
    """Tile `i` of a cache as `(uint8 (S, S, 3) image, int64 level-0 (x, y), {key: TileTargets})`.

    Every shard of the manifest is checked when the dataset is made: a missing, incomplete or
    unreadable shard is a `CacheError` naming the file. Files are opened per process, at most
    `max_open` at once.

    Args:
        folder: the cache folder.
        keys: the teachers to read (default: all cached).
        max_open: open shard files per process.
    """

    def __init__(
        self, folder: str | Path, keys: list[str] | None = None, max_open: int = MAX_OPEN_SHARDS
    ) -> None:
        self.folder = Path(folder)
        self.manifest: CacheManifest = read_manifest(self.folder)
        cached = [t["key"] for t in self.manifest.teachers]
        self.keys = list(keys) if keys is not None else cached
        missing = sorted(set(self.keys) - set(cached))
        if missing:
            raise KeyError(f"no teacher(s) {missing} in the cache {self.folder} (has {cached})")
        self.shards = []
        for i in range(self.manifest.n_shards):
            first, end = self.manifest.shard_tiles(i)
            self.shards.append(
                ShardReader(self.folder / shard_name(i), first, end - first, self.keys)
            )
        for shard in self.shards:
            shard.check()
            shard.close()
        self.max_open = max_open
        self._open: OrderedDict[int, None] = OrderedDict()

    def __len__(self) -> int:
        return self.manifest.n_tiles

    def _shard(self, s: int) -> ShardReader:
        self._open[s] = None
        self._open.move_to_end(s)
        while len(self._open) > self.max_open:
            evicted, _ = self._open.popitem(last=False)
            self.shards[evicted].close()
        return self.shards[s]

    def __getitem__(self, index: int) -> tuple[np.ndarray, torch.Tensor, dict[str, TileTargets]]:
        if not 0 <= index < len(self):
            raise IndexError(f"tile {index} out of range for a cache of {len(self)} tiles")
        s, local = divmod(int(index), self.manifest.shard_size)
        shard = self._shard(s)
        data, targets = shard.read(local)
        _, _, coords = shard.meta(local)
        return decode_tile(data), torch.from_numpy(np.asarray(coords, np.int64)), targets

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_open"] = OrderedDict()  # per process
        return state


class CachedDraws(Dataset):
    """Item `draw` is tile `draw % len(tiles)` with the draw's seed (`MultiCropDataset`'s); the
    crops are cut by `CachedMultiCropCollate`, which needs the whole batch for the crop size."""

    def __init__(self, tiles: Dataset, seed: int = 0) -> None:
        self.tiles = tiles
        self.seed = seed

    def __len__(self) -> int:
        return len(self.tiles)

    def __getitem__(self, draw: int) -> dict[str, Any]:
        image, _, targets = self.tiles[draw % len(self.tiles)]
        return {"image": image, "targets": targets, "seed": draw_seed(self.seed, draw)}

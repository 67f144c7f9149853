"""The cache header `manifest.json`: teachers (with fingerprints), image encoding, tiles, shards."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from slides.atomic import write_text_atomic
from vitkd.cache.errors import CacheError, CacheMismatchError

MANIFEST = "manifest.json"
FORMAT = "vitkd-teacher-cache"
VERSION = 1


def shard_name(i: int) -> str:
    """File name of shard `i`."""
    return f"shard-{i:05d}.h5"


@dataclass
class CacheManifest:
    """Everything a cache was built from; a resumed build must ask for exactly the same.

    Attributes:
        teachers: per teacher (in order): key, name, weights, weights_path, kwargs,
            fingerprint, mean, std, img_size, patch_size, embed_dim, grid (the teacher grid of
            the cached image), patch_tokens (tokens cached per tile).
        image: `size` (side of the cached image, the teachers' input), `encoding`, `quality`.
        tiles: `count`, `mpp`, `tile_size`, `slides` (paths, in order), `coords` (folder or
            None), `min_tissue`, `overlap`, `slide_mpp`.
        shard_size: tiles per shard (the last holds the rest).
        seed: seed of the patch-token sampling.
    """

    teachers: list[dict[str, Any]]
    image: dict[str, Any]
    tiles: dict[str, Any]
    shard_size: int
    seed: int
    format: str = FORMAT
    version: int = VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_tiles(self) -> int:
        """Tiles in the whole cache."""
        return int(self.tiles["count"])

    @property
    def n_shards(self) -> int:
        """Shard files of the whole cache."""
        return -(-self.n_tiles // self.shard_size)

    def shard_tiles(self, i: int) -> tuple[int, int]:
        """(first, end) global tile of shard `i`."""
        first = i * self.shard_size
        return first, min(first + self.shard_size, self.n_tiles)

    def teacher(self, key: str) -> dict[str, Any]:
        """The header entry of teacher `key`."""
        for t in self.teachers:
            if t["key"] == key:
                return t
        raise KeyError(f"no teacher {key!r} in the cache (has {[t['key'] for t in self.teachers]})")

    def to_json(self) -> str:
        """JSON text, stable key order."""
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    def write(self, folder: Path) -> Path:
        """Write `manifest.json` into `folder` atomically."""
        return write_text_atomic(Path(folder) / MANIFEST, self.to_json())


def read_manifest(folder: str | Path) -> CacheManifest:
    """The manifest of the cache in `folder`; `CacheError` naming the file when unusable."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise CacheError(
            f"{path}: no cache manifest; build the cache first: python -m vitkd.cache "
            f"--config TRAIN.yaml --out {folder}"
        )
    try:
        data = json.loads(path.read_text())
        manifest = CacheManifest(**data)
    except (json.JSONDecodeError, TypeError) as err:
        raise CacheError(f"{path}: not a vitkd cache manifest ({err})") from err
    if manifest.format != FORMAT or manifest.version != VERSION:
        raise CacheError(
            f"{path}: format {manifest.format!r} version {manifest.version}, this vitkd reads "
            f"{FORMAT!r} version {VERSION}"
        )
    return manifest


def _diff(old: Any, new: Any, where: str) -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new)):
            out += _diff(old.get(key), new.get(key), f"{where}.{key}" if where else key)
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [
            d
            for i, (a, b) in enumerate(zip(old, new, strict=True))
            for d in _diff(a, b, f"{where}[{i}]")
        ]
    if (
        isinstance(old, float)
        and isinstance(new, float)
        and abs(old - new) <= 1e-6 * (1 + abs(old))
    ):
        return []
    return [] if old == new else [f"{where}: cached {old!r}, asked {new!r}"]


def check_resumable(existing: CacheManifest, wanted: CacheManifest, folder: Path) -> None:
    """Raise `CacheMismatchError` listing every difference: a cache is only ever resumed with
    the settings and teachers it was started with, never rewritten."""
    diffs = _diff(asdict(existing), asdict(wanted), "")
    if diffs:
        shown = "; ".join(diffs[:8]) + (f"; and {len(diffs) - 8} more" if len(diffs) > 8 else "")
        raise CacheMismatchError(
            f"{folder / MANIFEST}: this cache was built with other settings or teachers ({shown}). "
            "Nothing was changed; give another --out folder for the new cache"
        )

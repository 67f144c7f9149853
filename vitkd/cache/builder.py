"""Build a teacher-feature cache: run the teachers once over the tiles and write the shards.

Resumable and atomic like `vitkd.embed`: the header (`manifest.json`) is written once and a
rerun must ask for the same settings and teachers (else an error, and nothing is touched);
finished shards are skipped; each shard is written under a lock to `<name>.tmp` and renamed
when complete, so a killed build leaves whole shards and at most a temporary file.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vitkd.cache.cost import cost_lines
from vitkd.cache.encoding import Encoding, encode_tile
from vitkd.cache.errors import CacheError
from vitkd.cache.manifest import (
    MANIFEST,
    CacheManifest,
    check_resumable,
    read_manifest,
    shard_name,
)
from vitkd.cache.sampling import index_dtype, sample_patch_indices
from vitkd.cache.shard import ShardWriter, TeacherLayout
from vitkd.cache.teachers import CacheTeacher
from vitkd.cache.tiles import plan_tiles, slide_position, teacher_input
from vitkd.data.datamodule import TileSource
from vitkd.data.slide_tiles import IndexTiles
from vitkd.embed.lock import SlideLock

log = logging.getLogger(__name__)

# tiles encoded before the build to measure the image's share of the declared cost
_COST_SAMPLE = 8


@dataclass(frozen=True)
class BuildOptions:
    """How to cache.

    Args:
        out: the cache folder.
        image_size: side of the cached image, the teachers' input (`None`: the first teacher's
            `img_size`).
        encoding: `jpeg` or `png` (lossless).
        quality: JPEG quality.
        patch_tokens: patch tokens cached per tile and teacher (all when the grid is smaller).
        seed: seed of the token sampling.
        shard_size: tiles per shard.
        batch_size: tiles per teacher forward.
        device: `auto` (CUDA when available), `cpu` or `cuda`.
    """

    out: Path
    image_size: int | None = None
    encoding: Encoding = "jpeg"
    quality: int = 90
    patch_tokens: int = 64
    seed: int = 0
    shard_size: int = 1024
    batch_size: int = 64
    device: str = "auto"


@dataclass
class BuildSummary:
    """What a build did: shards written, found finished, and left to a process holding them."""

    manifest: CacheManifest
    written: list[Path] = field(default_factory=list)
    existed: list[Path] = field(default_factory=list)
    locked: list[Path] = field(default_factory=list)
    cost: list[str] = field(default_factory=list)


def _check_sizes(teachers: list[CacheTeacher], size: int) -> None:
    for t in teachers:
        b = t.backbone
        if size % b.patch_size:
            raise CacheError(
                f"teacher {t.key!r}: cached images of {size} px are not a multiple of its patch "
                f"size {b.patch_size}; set --image-size to a multiple of every teacher's patch"
            )
        if not b.dynamic_img_size and b.spec.img_size != size:
            raise CacheError(
                f"teacher {t.key!r} takes {b.spec.img_size} px inputs, not {size}; set "
                f"--image-size {b.spec.img_size} or build it with dynamic_img_size: true"
            )


def make_manifest(
    teachers: list[CacheTeacher], source: TileSource, tiles: IndexTiles, options: BuildOptions
) -> CacheManifest:
    """The header of a cache of `tiles` by `teachers` with `options`."""
    size = options.image_size or int(teachers[0].backbone.spec.img_size)
    _check_sizes(teachers, size)
    # at least one token: training's patch loss averages over the cached tokens of each view
    if options.patch_tokens < 1 or options.shard_size < 1:
        raise CacheError(
            f"--patch-tokens {options.patch_tokens} and --shard-size {options.shard_size} must "
            "be >= 1"
        )
    entries = []
    for t in teachers:
        grid = t.backbone.grid_for(size, size)
        n = grid[0] * grid[1]
        entry = t.describe()
        entry.update(
            grid=list(grid),
            patch_tokens=min(options.patch_tokens, n),
            index_dtype=index_dtype(n).name,
        )
        entries.append(entry)
    quality = options.quality if options.encoding == "jpeg" else None
    return CacheManifest(
        teachers=entries,
        image={"size": size, "encoding": options.encoding, "quality": quality},
        tiles={
            "count": len(tiles),
            "mpp": source.mpp,
            "tile_size": source.tile_size,
            "slides": [str(p) for p in tiles.reader.index.slides],
            "coords": source.coords,
            "min_tissue": source.min_tissue,
            "overlap": source.overlap,
            "slide_mpp": source.slide_mpp,
        },
        shard_size=options.shard_size,
        seed=options.seed,
    )


def open_manifest(folder: Path, wanted: CacheManifest) -> CacheManifest:
    """Write the header of a new cache, or check a started one asks for the same."""
    folder.mkdir(parents=True, exist_ok=True)
    with SlideLock(folder / MANIFEST) as lock:
        while not lock.acquire():  # another build is writing the header: a moment at most
            time.sleep(0.1)
        if (folder / MANIFEST).exists():
            existing = read_manifest(folder)
            check_resumable(existing, wanted, folder)
            return existing
        wanted.write(folder)
        return wanted


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise CacheError("--device cuda, but no CUDA device is available")
    return torch.device(name)


def _image_label(manifest: CacheManifest) -> str:
    img = manifest.image
    q = f" q{img['quality']}" if img["encoding"] == "jpeg" else ""
    return f"{img['encoding']}{q}, {img['size']} px"


def declare_cost(tiles: IndexTiles, manifest: CacheManifest, options: BuildOptions) -> list[str]:
    """Cost lines, the image's bytes measured by encoding the first few tiles."""
    n = min(_COST_SAMPLE, len(tiles))
    size = manifest.image["size"]
    sizes = [
        len(encode_tile(teacher_input(tiles[i][0], size), options.encoding, options.quality))
        for i in range(n)
    ]
    image = float(np.mean(sizes)) if sizes else 0.0
    return cost_lines(manifest.teachers, image, manifest.n_tiles, _image_label(manifest))


@torch.no_grad()
def _targets(
    teacher: CacheTeacher,
    entry: dict,
    batch: torch.Tensor,
    ids: list[int],
    seed: int,
    dtype: torch.dtype,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    device = batch.device
    with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
        tokens = teacher.backbone.forward_tokens(batch)
    grid = tuple(entry["grid"])
    index = np.stack([sample_patch_indices(grid, entry["patch_tokens"], seed, i) for i in ids])
    rows = torch.from_numpy(index).to(device)
    patches = tokens.patches.gather(1, rows.unsqueeze(-1).expand(-1, -1, tokens.patches.shape[-1]))
    return (
        tokens.cls.float().cpu().numpy(),
        patches.float().cpu().numpy(),
        index,
    )


def write_shard(
    path: Path,
    shard: int,
    tiles: IndexTiles,
    teachers: list[CacheTeacher],
    manifest: CacheManifest,
    options: BuildOptions,
    device: torch.device,
) -> None:
    """Run the teachers over the tiles of shard `shard` and write it atomically."""
    first, end = manifest.shard_tiles(shard)
    entries = {t["key"]: t for t in manifest.teachers}
    layouts = [
        TeacherLayout(
            t.key,
            t.backbone.embed_dim,
            entries[t.key]["patch_tokens"],
            np.dtype(entries[t.key]["index_dtype"]),
        )
        for t in teachers
    ]
    size = manifest.image["size"]
    with ShardWriter(path, first, end - first, layouts) as writer:
        for start in range(first, end, options.batch_size):
            ids = list(range(start, min(start + options.batch_size, end)))
            images, encoded, coords = [], [], []
            for i in ids:
                tile, xy = tiles[i]
                image = teacher_input(tile, size)
                images.append(image)
                encoded.append(encode_tile(image, options.encoding, options.quality))
                coords.append(np.asarray(xy))
            batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).to(device)
            targets = {
                t.key: _targets(t, entries[t.key], batch, ids, manifest.seed, t.dtype(device))
                for t in teachers
            }
            writer.write(
                encoded,
                np.asarray(ids, np.int64),
                np.asarray([slide_position(tiles, i) for i in ids], np.int32),
                np.stack(coords),
                targets,
            )
        writer.commit()


def build_cache(
    teachers: list[CacheTeacher],
    source: TileSource,
    options: BuildOptions,
    say: Callable[[str], None] = print,
) -> BuildSummary:
    """Cache every tile of `source` for `teachers`; skips finished and locked shards.

    Args:
        teachers: the built teachers (`vitkd.cache.teachers.build_teachers`).
        source: slides and grids or coords files, resolution, tile size.
        options: encoding, token count, shards, device.
        say: where the cost declaration and progress go.
    """
    if not teachers:
        raise CacheError("no teacher to cache")
    tiles = plan_tiles(source)
    if len(tiles) == 0:
        raise CacheError("the slides have no tissue tile to cache at these settings")
    folder = Path(options.out)
    manifest = open_manifest(folder, make_manifest(teachers, source, tiles, options))
    summary = BuildSummary(manifest)
    summary.cost = declare_cost(tiles, manifest, options)
    say(f"vitkd.cache: {manifest.n_tiles:,} tiles in {manifest.n_shards} shard(s) -> {folder}")
    for line in summary.cost:
        say(f"  {line}")
    device = _device(options.device)
    for t in teachers:
        t.backbone.to(device=device, dtype=t.dtype(device))
    for shard in range(manifest.n_shards):
        path = folder / shard_name(shard)
        if path.exists():
            summary.existed.append(path)
            continue
        lock = SlideLock(path)
        if not lock.acquire():
            summary.locked.append(path)
            continue
        try:
            if path.exists():  # finished by another process between the check and the lock
                summary.existed.append(path)
                continue
            write_shard(path, shard, tiles, teachers, manifest, options, device)
            summary.written.append(path)
            say(
                f"  wrote {path.name} ({len(summary.written) + len(summary.existed)}/"
                f"{manifest.n_shards})"
            )
        finally:
            lock.release()
    return summary

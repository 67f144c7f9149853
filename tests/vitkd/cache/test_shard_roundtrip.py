"""A built cache reads back: the teacher's tokens of each decoded tile, at the sampled indices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from cache_fixtures import TEACHER

from vitkd.cache import read_manifest
from vitkd.cache.dataset import CacheTiles
from vitkd.cache.encoding import decode_tile, encode_tile, psnr
from vitkd.cache.sampling import sample_patch_indices
from vitkd.cache.teachers import build_teachers, teacher_blocks


def test_manifest_records_the_teacher(built_cache: Path) -> None:
    manifest = read_manifest(built_cache)
    (entry,) = manifest.teachers
    teacher = build_teachers(teacher_blocks({"teacher": TEACHER}))[0]
    assert entry["key"] == teacher.key
    assert entry["fingerprint"] == teacher.fingerprint
    assert entry["grid"] == [4, 4] and entry["patch_size"] == 14 and entry["img_size"] == 56
    assert entry["mean"] == [float(v) for v in teacher.backbone.spec.mean]
    assert entry["patch_tokens"] == 6 and entry["weights"] == "random"
    assert manifest.n_tiles == 20 and manifest.n_shards == 3
    assert sorted(p.name for p in built_cache.glob("*.h5")) == [
        f"shard-0000{i}.h5" for i in range(3)
    ]


def test_targets_are_the_teachers_tokens_of_the_cached_tile(built_cache: Path) -> None:
    teacher = build_teachers(teacher_blocks({"teacher": TEACHER}))[0]
    tiles = CacheTiles(built_cache)
    key = teacher.key
    for i in (0, 9, 19):  # three shards, the last one short
        image, coords, targets = tiles[i]
        assert image.shape == (56, 56, 3) and image.dtype == np.uint8
        assert coords.shape == (2,)
        t = targets[key]
        assert t.cls.dtype == np.float16 and t.patches.shape == (6, 48)
        np.testing.assert_array_equal(t.index, sample_patch_indices((4, 4), 6, 0, i))
        with torch.no_grad():
            tokens = teacher.backbone.forward_tokens(torch.from_numpy(image).permute(2, 0, 1)[None])
        # PNG is lossless: the decoded tile is what the teacher saw
        torch.testing.assert_close(
            torch.from_numpy(t.cls).float(), tokens.cls[0], atol=2e-3, rtol=1e-3
        )
        live = tokens.patches[0, torch.from_numpy(t.index)]
        torch.testing.assert_close(torch.from_numpy(t.patches).float(), live, atol=2e-3, rtol=1e-3)


def test_index_sampling_is_a_function_of_seed_tile_and_grid() -> None:
    a = sample_patch_indices((16, 16), 64, 0, 5)
    assert len(set(a.tolist())) == 64 and a.max() < 256
    np.testing.assert_array_equal(a, sample_patch_indices((16, 16), 64, 0, 5))
    assert not np.array_equal(a, sample_patch_indices((16, 16), 64, 0, 6))
    assert not np.array_equal(a, sample_patch_indices((16, 16), 64, 1, 5))
    assert len(sample_patch_indices((4, 4), 64, 0, 0)) == 16  # all, when the grid is smaller


def test_png_is_lossless_and_jpeg_close() -> None:
    rng = np.random.default_rng(0)
    tile = (rng.random((56, 56, 3)) * 40 + 150).astype(np.uint8)
    np.testing.assert_array_equal(decode_tile(encode_tile(tile, "png")), tile)
    jpeg = decode_tile(encode_tile(tile, "jpeg", quality=95))
    assert jpeg.shape == tile.shape and 25 < psnr(tile, jpeg) < float("inf")
